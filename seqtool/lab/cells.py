"""Recurrent cells side by side: Elman RNN, LSTM, LSTM with peepholes and GRU.

For one size (embedding E = hidden H, L layers, tied output layer) this gives
each cell's parameter count, its training speed on the same synthetic
language-model batch, and the validation perplexity it reaches on a corpus
(Penn Treebank in the course) when every cell trains for the same wall-clock
budget with the same optimizer and data.

Per layer with input size D, torch's fused cells keep two bias vectors
(b_ih and b_hh, for cuDNN compatibility); the peephole LSTM keeps one bias and
three peephole vectors (p_i, p_f, p_o), so it has H parameters fewer than LSTM:

    rnn       H(D + H) + 2H
    gru       3 [H(D + H) + 2H]          three gates' worth: update, reset, candidate
    lstm      4 [H(D + H) + 2H]          input, forget, cell candidate, output
    peephole  4 H(D + H) + 4H + 3H
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from seqtool.config import LMModelConfig
from seqtool.data.lm import batchify, encode_stream
from seqtool.data.text import read_lines
from seqtool.data.tokenizer import WordTokenizer
from seqtool.models.lm import RNNLM, count_parameters
from seqtool.metrics import evaluate_loss

CELLS = {"rnn": "rnn_tanh", "lstm": "lstm", "peephole": "peephole", "gru": "gru"}


@dataclass(frozen=True, kw_only=True)
class CellsConfig:
    hidden: int = 200  # hidden size = embedding size (tied output layer)
    layers: int = 1  # stacked recurrent layers
    batch_size: int = 20  # streams per batch
    bptt: int = 35  # truncated BPTT window
    lr: float = 3e-3  # Adam
    clip: float = 0.25  # gradient norm clipping
    seconds: float = 60.0  # training budget per cell (0 = skip the perplexity part)
    speed_steps: int = 20  # timed steps per cell for tokens/s (after two warm-up steps)
    vocab: int = 10_000  # vocabulary of the synthetic batch when no corpus is given
    valid_tokens: int = 0  # evaluate on at most this many validation tokens (0 = all)
    seed: int = 0


def expected_recurrent_parameters(cell: str, input_size: int, hidden: int, layers: int) -> int:
    """The hand count in the module docstring, summed over the layers."""
    total = 0
    for layer in range(layers):
        d = input_size if layer == 0 else hidden
        block = hidden * (d + hidden)
        total += {"rnn": block + 2 * hidden, "gru": 3 * (block + 2 * hidden),
                  "lstm": 4 * (block + 2 * hidden),
                  "peephole": 4 * block + 4 * hidden + 3 * hidden}[cell]
    return total


def build_lm(cell: str, cfg: CellsConfig, vocab_size: int) -> RNNLM:
    model_cfg = LMModelConfig(cell=CELLS[cell], emb_dim=cfg.hidden, hidden=cfg.hidden,
                              layers=cfg.layers, dropout=0.0, tie_weights=True, softmax="full")
    return RNNLM(model_cfg, vocab_size)


def train_step(model: RNNLM, opt: torch.optim.Optimizer, batch: dict[str, Tensor],
               carry: object, clip: float) -> tuple[float, object]:
    """One optimizer step on one BPTT window; returns the mean NLL and the carried state."""
    res = model.loss(batch, carry)
    opt.zero_grad(set_to_none=True)
    (res.loss_sum / res.tokens).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(res.loss_sum.detach()) / res.tokens, res.carry


def tokens_per_second(models: dict[str, RNNLM], cfg: CellsConfig, vocab_size: int
                      ) -> dict[str, float]:
    """Training speed (forward, backward, Adam step) of each model on the same random
    batch (T, B). The models take turns, one step each per round, and each one's
    median step time counts, so a burst of load elsewhere hits all of them alike."""
    gen = torch.Generator().manual_seed(cfg.seed)
    ids = torch.randint(0, vocab_size, (cfg.bptt + 1, cfg.batch_size), generator=gen)
    batch = {"input": ids[:-1], "target": ids[1:]}  # (T, B) each
    opts = {name: torch.optim.Adam(m.parameters(), lr=cfg.lr) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(2 + cfg.speed_steps):  # two warm-up rounds: allocations, kernels
        for name, model in models.items():
            start = time.perf_counter()
            train_step(model, opts[name], batch, None, cfg.clip)
            if round_ >= 2:
                times[name].append(time.perf_counter() - start)
    return {name: cfg.bptt * cfg.batch_size / statistics.median(t) for name, t in times.items()}


@dataclass
class CorpusStreams:
    train: Tensor  # (N,) token ids
    valid: Tensor  # (M,)
    vocab_size: int
    source: str


def load_corpus(train_path: Path, valid_path: Path, source: str) -> CorpusStreams:
    """Word-level tokens of train and valid; the vocabulary is the training set's."""
    train_lines = read_lines(train_path, "train file")
    tok = WordTokenizer.train(train_lines)
    return CorpusStreams(encode_stream(train_lines, tok),
                         encode_stream(read_lines(valid_path, "valid file"), tok),
                         tok.vocab_size, source)


def train_for(model: RNNLM, data: CorpusStreams, cfg: CellsConfig) -> dict[str, float]:
    """Train for cfg.seconds of wall-clock time, then the validation perplexity."""
    train = batchify(data.train, cfg.batch_size)  # (N / B, B)
    valid = data.valid[: cfg.valid_tokens] if cfg.valid_tokens else data.valid
    valid = batchify(valid, min(10, max(1, valid.numel() // 2)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = tokens = 0
    carry, i = None, 0
    start = time.perf_counter()
    while time.perf_counter() - start < cfg.seconds:
        if i >= train.shape[0] - 1:  # next epoch
            carry, i = None, 0
        n = min(cfg.bptt, train.shape[0] - 1 - i)
        batch = {"input": train[i: i + n], "target": train[i + 1: i + 1 + n]}
        _, carry = train_step(model, opt, batch, carry, cfg.clip)
        i, steps, tokens = i + n, steps + 1, tokens + n * cfg.batch_size
    seconds = time.perf_counter() - start
    windows = ({"input": valid[j: j + cfg.bptt], "target": valid[j + 1: j + 1 + cfg.bptt]}
               for j in range(0, valid.shape[0] - 1, cfg.bptt))
    ev = evaluate_loss(model, windows, torch.device("cpu"))
    return {"train_steps": steps, "train_tokens": tokens, "train_seconds": seconds,
            "epochs": tokens / max(1, data.train.numel()), "valid_loss": ev["loss"],
            "valid_ppl": math.exp(min(ev["loss"], 50.0)), "valid_tokens": ev["tokens"]}


def compare_cells(cfg: CellsConfig, data: CorpusStreams | None,
                  on_cell: Callable[[str], None] | None = None) -> list[dict[str, object]]:
    """One row per cell: parameter counts, tokens/s, and (with data) validation perplexity."""
    vocab = data.vocab_size if data is not None else cfg.vocab
    models = {}
    for name in CELLS:
        torch.manual_seed(cfg.seed)
        models[name] = build_lm(name, cfg, vocab)
    if on_cell:
        on_cell("speed of every cell")
    speed = tokens_per_second(models, cfg, vocab)
    rows: list[dict[str, object]] = []
    for name, model in models.items():
        counts = count_parameters(model)
        row: dict[str, object] = {
            "name": name, "cell": CELLS[name], "recurrent_parameters": counts["rnn"],
            "expected_recurrent_parameters": expected_recurrent_parameters(
                name, cfg.hidden, cfg.hidden, cfg.layers),
            "parameters": sum(counts.values()), "tokens_per_s": speed[name]}
        if data is not None and cfg.seconds > 0:
            if on_cell:
                on_cell(f"training {name} for {cfg.seconds:g} s")
            torch.manual_seed(cfg.seed)
            row.update(train_for(build_lm(name, cfg, vocab), data, cfg))
        rows.append(row)
    return rows
