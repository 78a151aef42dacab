"""`seqtool lab`: the course's experiments. binary-addition (an RNN in NumPy), cells
(RNN, LSTM, peephole LSTM and GRU side by side) and gradients (how far back the
gradient of a loss reaches in each cell)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqtool.errors import ConfigError

# The course's five variants: the base model, then one change each.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "lr=0.01": {"lr": 0.01},
    "xavier": {"init": "xavier"},
    "relu": {"activation": "relu"},
    "tanh": {"activation": "tanh"},
}
BASE = {"activation": "sigmoid", "init": "normal", "lr": 0.1}


def variant_name(activation: str, init: str, lr: float) -> str:
    """'base', or the changes from it: 'relu', 'lr=0.01', 'tanh, xavier', ..."""
    changes = [v for k, v in (("activation", activation), ("init", init)) if v != BASE[k]]
    if lr != BASE["lr"]:
        changes.append(f"lr={lr:g}")
    return ", ".join(changes) or "base"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _check(hidden: int, steps: int, lr: float, clip: float, window: int) -> None:
    for flag, value, low in (("--hidden", hidden, 1), ("--steps", steps, 1),
                             ("--window", window, 1)):
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")
    if not lr > 0 or not math.isfinite(lr):
        raise ConfigError(f"--lr must be a positive number, got {lr}")
    if not clip >= 0 or not math.isfinite(clip):
        raise ConfigError(f"--clip must be >= 0 (0 = off), got {clip}")


def run_variant(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Train one network and judge its curve by the fixed criteria (lab/curves.py)."""
    import numpy as np

    from seqtool.lab.binary_addition import AdditionConfig, train
    from seqtool.lab.curves import classify

    run = train(AdditionConfig(**settings))
    max_norm = float(np.max(run.grad_norms)) if len(run.grad_norms) else 0.0
    verdict = classify(run.curve, max_norm, run.stopped_at is None, run.config.window)
    return {"name": name, "activation": run.config.activation, "init": run.config.init,
            "lr": run.config.lr, "outcome": verdict.outcome,
            "final_loss": _finite(run.curve[-1]),
            "steps_to_converge": (None if verdict.steps_to_converge is None
                                  else min(verdict.steps_to_converge, len(run.losses))),
            "accuracy": run.accuracy, "max_grad_norm": _finite(verdict.max_grad_norm),
            "steps_run": len(run.losses), "stopped_at": run.stopped_at,
            "tail_rel_std": verdict.tail_rel_std, "tail_drop": verdict.tail_drop,
            "losses": [_finite(v) for v in run.curve]}


def binary_addition(*, activation: str = "sigmoid", init: str = "normal", lr: float = 0.1,
                    hidden: int = 16, steps: int = 10_000, seed: int = 0, clip: float = 0.0,
                    window: int = 100, compare: bool = False, plot: Path | None = None,
                    on_variant: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One run with the given settings, or (compare) the course's five variants, each
    with hidden, steps, seed and clip as given. Optionally writes the curves to a PNG."""
    from seqtool.lab.curves import CRITERIA

    _check(hidden, steps, lr, clip, window)
    if plot is not None:
        from seqtool.plot import check_plot_target

        check_plot_target(plot)  # before minutes of training, not after
    shared = {"hidden": hidden, "steps": steps, "seed": seed, "clip": clip, "window": window}
    if compare:
        runs = {name: {**BASE, **change} for name, change in VARIANTS.items()}
    else:
        runs = {variant_name(activation, init, lr):
                {"activation": activation, "init": init, "lr": lr}}
    variants = []
    for name, settings in runs.items():
        if on_variant:
            on_variant(name)
        variants.append(run_variant(name, {**settings, **shared}))
    result = {"settings": shared, "criteria": CRITERIA, "variants": variants, "plot": None}
    if plot is not None:
        from seqtool.plot import save_loss_plot

        title = (f"binary addition, hidden {hidden}, seed {seed}"
                 + (f", clip {clip:g}" if clip else ""))
        save_loss_plot(plot, {v["name"]: v["losses"] for v in variants}, window, title)
        result["plot"] = str(plot)
    return result


def cells(*, hidden: int = 200, layers: int = 1, batch_size: int = 20, bptt: int = 35,
          seconds: float = 60.0, corpus_dir: Path | None = None, vocab: int = 10_000,
          valid_tokens: int = 0, seed: int = 0,
          on_cell: Callable[[str], None] | None = None) -> dict[str, Any]:
    """RNN, LSTM, peephole LSTM and GRU: parameters, tokens/s and (seconds > 0)
    validation perplexity after `seconds` of training each on PTB (or corpus_dir)."""
    for flag, value in (("--hidden", hidden), ("--layers", layers),
                        ("--batch-size", batch_size), ("--bptt", bptt), ("--vocab", vocab)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if not seconds >= 0 or not math.isfinite(seconds):
        raise ConfigError(f"--seconds must be >= 0, got {seconds}")
    if valid_tokens < 0:
        raise ConfigError(f"--valid-tokens must be >= 0, got {valid_tokens}")
    data_paths = _ptb_paths(corpus_dir) if seconds > 0 else None

    from seqtool.lab.cells import CellsConfig, compare_cells, load_corpus

    cfg = CellsConfig(hidden=hidden, layers=layers, batch_size=batch_size, bptt=bptt,
                      seconds=seconds, vocab=vocab, valid_tokens=valid_tokens, seed=seed)
    data = load_corpus(*data_paths) if data_paths else None
    rows = compare_cells(cfg, data, on_cell)
    return {"hidden": hidden, "embedding": hidden, "layers": layers, "batch_size": batch_size,
            "bptt": bptt, "seconds": seconds, "corpus": data.source if data else None,
            "vocab_size": data.vocab_size if data else vocab, "cells": rows}


def _ptb_paths(corpus_dir: Path | None) -> tuple[Path, Path, str]:
    """ptb.train.txt and ptb.valid.txt from corpus_dir, else the imported corpus 'ptb'."""
    from seqtool.errors import DataError

    if corpus_dir is not None:
        paths = [Path(corpus_dir) / f"ptb.{split}.txt" for split in ("train", "valid")]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{corpus_dir} has no {' or '.join(missing)}",
                            "give the folder holding ptb.train.txt and ptb.valid.txt")
        return paths[0], paths[1], str(corpus_dir)
    from seqtool.data.corpora import is_present, split_files

    if not is_present("ptb"):
        raise DataError("the perplexity part needs Penn Treebank, which is not imported",
                        "seqtool corpus import ptb --from DIR, or --corpus-dir DIR, or "
                        "--seconds 0 to skip training")
    files = split_files("ptb")
    return files["train"], files["valid"], "ptb"


def gradients(*, hidden: int = 32, steps: int = 100, train_steps: int = 200,
              forget_bias: float = 1.0, batch_size: int = 32, seed: int = 0,
              cells: tuple[str, ...] | None = None, plot: Path | None = None,
              on_cell: Callable[[str], None] | None = None) -> dict[str, Any]:
    """||dL/dh_{T-k}|| against k for a tanh RNN, a ReLU RNN, an LSTM and a GRU of one
    size, at initialisation and after `train_steps` of training (lab/gradients.py)."""
    for flag, value, low, high in (("--hidden", hidden, 1, 4096), ("--steps", steps, 2, 1000),
                                   ("--train-steps", train_steps, 0, 100_000),
                                   ("--batch-size", batch_size, 1, 4096)):
        if not low <= value <= high:
            raise ConfigError(f"{flag} must be from {low} to {high}, got {value}",
                              "see: seqtool lab gradients --help")
    if not math.isfinite(forget_bias):
        raise ConfigError(f"--forget-bias must be a number, got {forget_bias}",
                          "e.g. --forget-bias 1 (the gate starts near sigmoid(1) = 0.73)")
    if plot is not None:
        from seqtool.plot import check_plot_target

        check_plot_target(plot, example="gradients.png")

    from seqtool.lab.gradients import CELLS, GradientsConfig, compare

    chosen = cells or CELLS
    unknown = [c for c in chosen if c not in CELLS]
    if unknown:
        raise ConfigError(f"unknown cell {unknown[0]!r}", f"cells: {', '.join(CELLS)}")
    cfg = GradientsConfig(hidden=hidden, steps=steps, train_steps=train_steps,
                          forget_bias=forget_bias, batch_size=batch_size, seed=seed)
    rows = compare(cfg, tuple(chosen), on_cell)
    settings = {"hidden": hidden, "steps": steps, "train_steps": train_steps,
                "forget_bias": forget_bias, "batch_size": batch_size, "seed": seed,
                "symbols": cfg.symbols,
                "task": "recall the first of T symbols (cross-entropy at the last step)"}
    result: dict[str, Any] = {"settings": settings, "cells": rows, "plot": None}
    if plot is not None:
        from seqtool.plot import save_gradient_plot

        save_gradient_plot(plot, rows, f"||dL/dh_(T-k)|| / ||dL/dh_T||, hidden {hidden}, "
                           f"T = {steps}, forget bias {forget_bias:g}")
        result["plot"] = str(plot)
    return result
