"""The vanishing / exploding gradient argument, measured: how much of the gradient
of a loss at the last step reaches the hidden state k steps back.

For a simple RNN h_t = f(W x_t + U h_{t-1} + b) (Elman; BPTT as in Werbos 1990):

    dL/dh_{T-k} = dL/dh_T . prod_{s=T-k+1..T} diag(f'(a_s)) U

f' is at most 0.25 for the sigmoid and 1 for tanh, so unless U's gain makes up
for it the product shrinks geometrically with k (Bengio et al. 1994; Pascanu et
al. 2013); ReLU (f' = 1 where active) passes U's gain unchanged and explodes when
it is above 1. The LSTM's cell state c_t = f_t * c_{t-1} + i_t * g_t has
dc_t/dc_{t-1} = f_t, the constant error carousel (Hochreiter & Schmidhuber 1997):
with the forget gate near 1 the error travels back almost unchanged. The GRU's
update gate z gives h_t the same kind of path: dh_t/dh_{t-1} contains z_t.

The task is a memory task whose loss depends only on the first input: a
sequence of T one-hot symbols, and the loss (cross-entropy) at the last step asks
for the first symbol. The norms are measured at initialisation and after a short
training run on that task (Adam), one cell type at a time, all of the same size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
DISTANCES = (10, 25, 50, 100)  # steps back shown in the table (those within T)


@dataclass(frozen=True)
class GradientsConfig:
    hidden: int = 32  # hidden size of every cell
    steps: int = 100  # T: sequence length; the loss is at step T
    symbols: int = 8  # one-hot input size; the task asks for the first symbol
    batch_size: int = 32
    train_steps: int = 200  # short training on the task (0 = initialisation only)
    lr: float = 1e-2  # Adam
    clip: float = 1.0  # gradient norm clipping during the short training
    forget_bias: float = 1.0  # the LSTM forget gate's bias: f starts near sigmoid(b)
    seed: int = 0


class CellModel(nn.Module):
    """One recurrent cell unrolled by hand, so every h_t is a tensor of its own, and
    a linear read-out of the last state."""

    def __init__(self, cell: str, cfg: GradientsConfig) -> None:
        super().__init__()
        self.kind = cell
        if cell in ("rnn_tanh", "rnn_relu"):
            self.cell: nn.Module = nn.RNNCell(cfg.symbols, cfg.hidden, nonlinearity=cell[4:])
        elif cell == "lstm":
            self.cell = nn.LSTMCell(cfg.symbols, cfg.hidden)
            with torch.no_grad():  # gates i, f, g, o: the forget gate's bias is b
                h = cfg.hidden
                self.cell.bias_ih[h: 2 * h].fill_(cfg.forget_bias)
                self.cell.bias_hh[h: 2 * h].zero_()
        elif cell == "gru":
            self.cell = nn.GRUCell(cfg.symbols, cfg.hidden)
        else:
            raise ValueError(f"unknown cell {cell!r}; valid: {', '.join(CELLS)}")
        self.readout = nn.Linear(cfg.hidden, cfg.symbols)

    def unroll(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """x (T, B, S) -> logits (B, S) of the last step, every h_t and (LSTM) c_t."""
        rows, hidden = x.shape[1], self.readout.in_features
        h = x.new_zeros(rows, hidden)
        c = x.new_zeros(rows, hidden)
        hs, cs = [], []
        for t in range(x.shape[0]):
            if self.kind == "lstm":
                h, c = self.cell(x[t], (h, c))
                cs.append(c)
            else:
                h = self.cell(x[t], h)
            hs.append(h)
            if h.requires_grad:  # keep each step's gradient for the profile
                h.retain_grad()
                if self.kind == "lstm":
                    c.retain_grad()
        return self.readout(h), hs, cs


def task_batch(cfg: GradientsConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """T random one-hot symbols per row (T, B, S) and the first one as the target (B,)."""
    ids = torch.randint(cfg.symbols, (cfg.steps, cfg.batch_size), generator=gen)
    return F.one_hot(ids, cfg.symbols).float(), ids[0]


def gradient_profile(model: CellModel, x: Tensor, y: Tensor) -> dict[str, Any]:
    """||dL/dh_{T-k}|| for k = 0..T-1 (index k: k steps back from the loss), the same
    for c (LSTM), and the loss. Norms are over the whole batch (Frobenius)."""
    model.zero_grad(set_to_none=True)
    logits, hs, cs = model.unroll(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    back = list(reversed(hs))
    out: dict[str, Any] = {"loss": float(loss.detach()), "dh": [_norm(h) for h in back]}
    if cs:
        out["dc"] = [_norm(c) for c in reversed(cs)]
    model.zero_grad(set_to_none=True)
    return out


def _norm(t: Tensor) -> float:
    """The gradient's norm in float64 (squares of float32 values near 1e-20 underflow)."""
    return float(t.grad.double().norm()) if t.grad is not None else 0.0


def decay_per_step(norms: list[float]) -> dict[str, float | None]:
    """The geometric fit log ||g_k|| = a + k log(r): the factor r per step back, and
    how well a straight line on the log scale fits (R^2; 1 = exactly geometric)."""
    pts = [(k, math.log(v)) for k, v in enumerate(norms) if v > 0 and math.isfinite(v)]
    if len(pts) < 3:
        return {"factor": None, "r2": None}
    n = len(pts)
    mk = sum(k for k, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    sxx = sum((k - mk) ** 2 for k, _ in pts)
    sxy = sum((k - mk) * (v - mv) for k, v in pts)
    slope = sxy / sxx
    ss_tot = sum((v - mv) ** 2 for _, v in pts)
    ss_res = sum((v - mv - slope * (k - mk)) ** 2 for k, v in pts)
    return {"factor": math.exp(slope), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def summarise(profile: dict[str, Any], steps: int) -> dict[str, Any]:
    """The norms relative to the last step's, at the table's distances, and the fit."""
    dh = profile["dh"]
    base = dh[0] if dh and dh[0] > 0 else float("nan")
    rel = {str(d): dh[d - 1] / base for d in DISTANCES if d <= steps}
    return {"loss": profile["loss"], "relative": rel, **decay_per_step(dh)}


def train_briefly(model: CellModel, cfg: GradientsConfig, gen: torch.Generator) -> float:
    """cfg.train_steps of Adam on fresh task batches; the accuracy on one more batch."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(cfg.train_steps):
        x, y = task_batch(cfg, gen)
        logits, _, _ = model.unroll(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
    with torch.no_grad():
        x, y = task_batch(cfg, gen)
        return float((model.unroll(x)[0].argmax(1) == y).float().mean())


def compare(cfg: GradientsConfig, cells: tuple[str, ...] = CELLS,
            on_cell: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every cell at initialisation and (train_steps > 0) after training: parameters,
    the gradient norms by distance, their geometric fit."""
    rows = []
    for cell in cells:
        if on_cell:
            on_cell(cell)
        torch.manual_seed(cfg.seed)  # the same start for every cell type
        model = CellModel(cell, cfg)
        gen = torch.Generator().manual_seed(cfg.seed)
        probe = task_batch(cfg, gen)  # the same measuring batch before and after
        row: dict[str, Any] = {
            "cell": cell, "parameters": sum(p.numel() for p in model.cell.parameters())}
        init = gradient_profile(model, *probe)
        row["init"] = {**summarise(init, cfg.steps), "dh": init["dh"],
                       **({"dc": init["dc"]} if "dc" in init else {})}
        if cfg.train_steps:
            accuracy = train_briefly(model, cfg, gen)
            trained = gradient_profile(model, *probe)
            row["trained"] = {**summarise(trained, cfg.steps), "dh": trained["dh"],
                              "accuracy": accuracy,
                              **({"dc": trained["dc"]} if "dc" in trained else {})}
        rows.append(row)
    return rows
