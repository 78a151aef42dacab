"""Recurrent layers: Elman RNN (tanh/relu), LSTM and GRU on torch's fused
kernels, and an LSTM with peephole connections as a custom cell.

All take padded, time-major input `(T, B, D)` (packed sequences are several
times slower on a CPU, and padded input keeps nn.LSTM on its oneDNN path).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu", "peephole")


def fast_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """nn.functional.dropout, with the CPU mask drawn by torch.rand: torch's CPU
    bernoulli_ takes ~17 ms for a (35, 64, 650) mask on 2 threads, rand ~4 ms
    (the PTB LM draws three such masks a step). Other devices use F.dropout."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return nn.functional.dropout(x, p, training)
    keep = torch.rand(x.shape, device=x.device) >= p
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """nn.Dropout through fast_dropout (same module, same state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        return fast_dropout(x, self.p, self.training)


_FUSED = {"LSTM": torch._VF.lstm, "GRU": torch._VF.gru, "RNN_TANH": torch._VF.rnn_tanh,
          "RNN_RELU": torch._VF.rnn_relu}


def _layerwise(rnn: nn.RNNBase, x: Tensor, hx: Any) -> tuple[Tensor, Any]:
    """rnn(x, hx) as one fused call per stacked layer with fast_dropout between them
    (torch's own call draws those masks with bernoulli_): the same weights and math."""
    dirs = 2 if rnn.bidirectional else 1
    lstm = rnn.mode == "LSTM"
    if hx is None:
        z = x.new_zeros(rnn.num_layers * dirs, x.shape[1], rnn.hidden_size)
        hx = (z, z) if lstm else z
    weights = rnn._flat_weights
    per = len(weights) // (rnn.num_layers * dirs)
    hs, cs = [], []
    for layer in range(rnn.num_layers):
        if layer:
            x = fast_dropout(x, rnn.dropout, True)
        rows = slice(layer * dirs, (layer + 1) * dirs)
        state = (hx[0][rows], hx[1][rows]) if lstm else hx[rows]
        fused: Any = _FUSED[rnn.mode]
        x, *new = fused(x, state, weights[layer * dirs * per:(layer + 1) * dirs * per],
                  rnn.bias, 1, 0.0, True, rnn.bidirectional, False)
        hs.append(new[0])
        if lstm:
            cs.append(new[1])
    h = torch.cat(hs)
    return x, ((h, torch.cat(cs)) if lstm else h)


def _use_layerwise(rnn: nn.RNNBase, x: Any) -> bool:
    """Training on a CPU with dropout between stacked layers, time-major input."""
    return bool(rnn.training and rnn.dropout and rnn.num_layers > 1 and not rnn.batch_first
                and isinstance(x, Tensor) and x.dim() == 3 and x.device.type == "cpu")


class _DropoutBetweenLayers:
    """The forward of LSTM/GRU/RNN below: layer by layer with fast_dropout where
    _use_layerwise says so, torch's own stacked call otherwise."""

    def forward(self, x: Any, hx: Any = None) -> Any:
        if _use_layerwise(self, x):  # type: ignore[arg-type]
            return _layerwise(self, x, hx)  # type: ignore[arg-type]
        return super().forward(x, hx)  # type: ignore[misc]


class LSTM(_DropoutBetweenLayers, nn.LSTM):
    """nn.LSTM (same parameters and names) whose CPU training uses fast_dropout."""


class GRU(_DropoutBetweenLayers, nn.GRU):
    """nn.GRU (same parameters and names) whose CPU training uses fast_dropout."""


class RNN(_DropoutBetweenLayers, nn.RNN):
    """nn.RNN (same parameters and names) whose CPU training uses fast_dropout."""


class PeepholeLSTM(nn.Module):
    """LSTM whose gates also see the cell state (Gers & Schmidhuber 2000).

    i = s(W_i x + U_i h + p_i * c_prev),  f = s(W_f x + U_f h + p_f * c_prev)
    c = f * c_prev + i * tanh(W_g x + U_g h),  o = s(W_o x + U_o h + p_o * c),
    h = o * tanh(c).  The constant error carousel (CEC) is the `c` path.
    nn.LSTM has no peepholes, so this runs a Python time loop: the input
    projections for all steps are one matmul, only the recurrent matmul and
    the pointwise ops loop.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dirs = 2 if bidirectional else 1
        self.dropout = dropout
        self.w_ih = nn.ParameterList()
        self.w_hh = nn.ParameterList()
        self.bias = nn.ParameterList()
        self.peep = nn.ParameterList()
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * self.dirs
            for _ in range(self.dirs):
                self.w_ih.append(nn.Parameter(torch.empty(4 * hidden_size, in_size)))
                self.w_hh.append(nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
                self.bias.append(nn.Parameter(torch.zeros(4 * hidden_size)))
                self.peep.append(nn.Parameter(torch.zeros(3, hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As nn.LSTM (weights and bias uniform in +-1/sqrt(H); its two bias vectors
        are one here), peepholes zero: at the start it is nn.LSTM's function, so the
        lab compares the peepholes alone. (A forget-gate bias of 1, the usual advice
        for long memories, made its first 300 steps on a synthetic stream learn
        ~7% slower in loss than nn.LSTM; with this init it tracks nn.LSTM.)"""
        bound = self.hidden_size ** -0.5
        for w in [*self.w_ih, *self.w_hh, *self.bias]:
            nn.init.uniform_(w, -bound, bound)
        for p in self.peep:
            nn.init.zeros_(p)

    def _run(self, x: Tensor, k: int, h: Tensor, c: Tensor, reverse: bool
             ) -> tuple[Tensor, Tensor, Tensor]:
        gates_x = torch.addmm(self.bias[k], x.flatten(0, 1), self.w_ih[k].t())
        gates_x = gates_x.view(x.shape[0], x.shape[1], -1)  # (T, B, 4H)
        p_i, p_f, p_o = self.peep[k]
        outs = []
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        for t in steps:
            g = gates_x[t] + h @ self.w_hh[k].t()
            gi, gf, gg, go = g.chunk(4, dim=1)
            i = torch.sigmoid(gi + p_i * c)
            f = torch.sigmoid(gf + p_f * c)
            c = f * c + i * torch.tanh(gg)
            o = torch.sigmoid(go + p_o * c)
            h = o * torch.tanh(c)
            outs.append(h)
        if reverse:
            outs.reverse()
        return torch.stack(outs), h, c

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batch = x.shape[1]
        n = self.num_layers * self.dirs
        if state is None:
            z = x.new_zeros(n, batch, self.hidden_size)
            state = (z, z)
        h0, c0 = state
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.dirs):
                k = layer * self.dirs + d
                out, h, c = self._run(x, k, h0[k], c0[k], reverse=d == 1)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            x = torch.cat(outs, dim=2) if self.dirs == 2 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = fast_dropout(x, self.dropout, True)
        return x, (torch.stack(hs), torch.stack(cs))


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
             dropout: float = 0.0, bidirectional: bool = False) -> nn.Module:
    """A stacked recurrent layer, time-major: forward(x (T,B,D), state) -> (out, state)."""
    drop = dropout if num_layers > 1 else 0.0
    if cell == "lstm":
        return LSTM(input_size, hidden_size, num_layers, dropout=drop,
                    bidirectional=bidirectional)
    if cell == "gru":
        return GRU(input_size, hidden_size, num_layers, dropout=drop,
                   bidirectional=bidirectional)
    if cell in ("rnn_tanh", "rnn_relu"):
        return RNN(input_size, hidden_size, num_layers, nonlinearity=cell[4:],
                   dropout=drop, bidirectional=bidirectional)
    if cell == "peephole":
        return PeepholeLSTM(input_size, hidden_size, num_layers, drop, bidirectional)
    raise ValueError(f"unknown cell {cell!r}; valid: {', '.join(CELLS)}")

