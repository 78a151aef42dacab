"""`seqtool plot`: the training curves of one or several runs in one PNG (loss,
perplexity, validation BLEU, learning rate against steps or tokens seen), from
each run's metrics.jsonl and train.jsonl (history.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.errors import InputError

X_AXES = ("steps", "tokens")


def run_labels(runs: list[Path]) -> list[str]:
    """Each run's folder name, or its path where two runs share a name."""
    names = [Path(r).name or str(r) for r in runs]
    return [n if names.count(n) == 1 else str(r) for n, r in zip(names, runs, strict=True)]


def plot_runs(runs: list[Path], out: Path, x: str = "steps") -> dict[str, Any]:
    """Read every run's history, then draw them side by side into `out`; the
    summary of each run for the table or --json."""
    from seqtool.history import read_history
    from seqtool.plot import check_plot_target, save_curves_plot

    if x not in X_AXES:
        raise InputError(f"--x {x!r} is not one of {', '.join(X_AXES)}", "use --x steps")
    check_plot_target(out, "--out", "curves.png")
    histories = [read_history(r) for r in runs]
    key = "tokens" if x == "tokens" else "step"
    for h in histories:
        if x == "tokens" and not h.series("valid_loss", key)[0]:
            raise InputError(f"{h.run}/metrics.jsonl records no token counts (a run from "
                             "before seqtool logged them)", "plot it with --x steps")
    labels = run_labels([h.run for h in histories])
    panels = save_curves_plot(out, list(zip(labels, histories, strict=True)), key)
    return {"out": str(out), "x": x, "panels": panels,
            "runs": [{"name": n, **h.summary()} for n, h in zip(labels, histories,
                                                                 strict=True)]}
