"""PNG figures with matplotlib, an optional extra (pip install 'seqtool[plot]'): runs'
training curves, the lab's loss curves and gradient norms, and a translation's
attention matrix."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from seqtool.errors import InputError

INSTALL_HINT = "install the plotting extra: pip install 'seqtool[plot]' (or pip install matplotlib)"


def check_plot_target(path: Path, option: str = "--plot", example: str = "losses.png") -> None:
    """Fail before any work if the PNG could not be written: matplotlib is
    missing, the folder does not exist, the path is a folder or not writable."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(f"{option} needs matplotlib, which is not installed",
                         INSTALL_HINT) from None
    hint = f"give a file path in an existing, writable folder, e.g. {option} {example}"
    if path.is_dir():
        raise InputError(f"cannot write the plot: {path} is a folder", hint)
    if not path.parent.is_dir():
        raise InputError(f"cannot write the plot: folder {path.parent} does not exist", hint)
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write the plot to {path}: {exc.strerror or exc}", hint) from None
    if not existed:
        os.remove(path)


def save_loss_plot(path: Path, curves: dict[str, list[float | None]], window: int,
                   title: str, y_cap: float = 100.0) -> None:
    """One line per run: mean training loss per window of steps, log scale; the
    axis ends at y_cap (a curve above it leaves the top of the plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    shown = [v for c in curves.values() for v in c if v is not None and math.isfinite(v) and v > 0]
    for name, curve in curves.items():
        xs = [(i + 1) * window for i, v in enumerate(curve)
              if v is not None and math.isfinite(v) and v > 0]
        ys = [v for v in curve if v is not None and math.isfinite(v) and v > 0]
        ax.plot(xs, ys, label=name, linewidth=1.4)
    ax.set_yscale("log")
    if shown:  # an exploding run would squash the others: cut the axis at y_cap
        ax.set_ylim(min(shown) / 1.5, min(max(shown), y_cap) * 1.5)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"loss (mean over {window} steps)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    _save(fig, path)


def save_curves_plot(path: Path, runs: list[tuple[str, Any]], x: str = "step") -> list[str]:
    """Training curves of runs (name, history.RunHistory) side by side: loss, perplexity
    and learning rate (both log scale), validation BLEU (when a run has it), against
    x = "step" or "tokens" (tokens seen). One colour per run; training windows solid,
    evaluations dashed with dots. Returns the panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["loss", "perplexity", "learning rate"]
    if any(h.series("valid_bleu")[1] for _, h in runs):
        panels.insert(2, "BLEU")
    rows, cols = (2, 2) if len(panels) == 4 else (1, 3)
    fig, grid = plt.subplots(rows, cols, figsize=(6.0 * cols, 4.2 * rows), dpi=110,
                             squeeze=False)
    axes = dict(zip(panels, grid.flat, strict=True))
    for n, (name, h) in enumerate(runs):
        colour = f"C{n % 10}"
        for panel, train_key, valid_key in (("loss", "loss", "valid_loss"),
                                            ("perplexity", "ppl", "valid_ppl"),
                                            ("BLEU", None, "valid_bleu")):
            if panel not in axes:
                continue
            ax = axes[panel]
            if train_key:
                _line(ax, h.series(train_key, x, "train"), "-", color=colour, linewidth=1.0,
                      alpha=0.8, label=f"{name} (training)")
            _line(ax, h.series(valid_key, x), "--o", color=colour, markersize=3,
                  linewidth=1.4, label=f"{name} (validation)")
        lr = h.series("lr", x, "train")
        _line(axes["learning rate"], lr if lr[0] else h.series("lr", x), "-", color=colour,
              linewidth=1.4, drawstyle="steps-post", label=name)
    axes["perplexity"].set_yscale("log")
    axes["learning rate"].set_yscale("log")  # plateau decays as equal steps
    for panel, ax in axes.items():
        ax.set_title(panel if panel != "BLEU" else "validation BLEU (greedy)")
        ax.set_xlabel("tokens seen" if x == "tokens" else "training step")
        ax.grid(True, which="both", alpha=0.3)
    axes["loss"].legend(fontsize=8)
    if len(runs) > 1:
        axes["learning rate"].legend(fontsize=8)
    fig.suptitle("training curves: " + ", ".join(name for name, _ in runs))
    _save(fig, path)
    return panels


def _line(ax: Any, xy: tuple[list[float], list[float]], style: str, **kw: Any) -> None:
    if xy[0]:  # a run without this series adds no empty legend entry
        ax.plot(*xy, style, **kw)


def save_gradient_plot(path: Path, rows: list[dict], title: str) -> None:
    """lab gradients: the norm of the gradient k steps back, relative to the last
    step's, on a log scale; one colour per cell, solid at initialisation, dashed after
    training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for n, row in enumerate(rows):
        colour = f"C{n}"
        for phase, style in (("init", "-"), ("trained", "--")):
            if phase not in row:
                continue
            dh = row[phase]["dh"]
            base = dh[0] if dh and dh[0] > 0 else 1.0
            pts = [(k, v / base) for k, v in enumerate(dh) if v > 0 and math.isfinite(v)]
            label = f"{row['cell']} ({'initialisation' if phase == 'init' else 'trained'})"
            ax.plot([k for k, _ in pts], [v for _, v in pts], style, color=colour,
                    label=label, linewidth=1.4)
    ax.set_yscale("log")
    ax.set_xlabel("k: steps back from the loss")
    ax.set_ylabel("relative gradient norm")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def _save(fig: object, path: Path) -> None:
    """Write the figure as PNG and close it; an OS error becomes one error line."""
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    try:
        fig.savefig(path, format="png")  # type: ignore[attr-defined]
    except OSError as exc:
        raise InputError(f"cannot write the plot to {path}: {exc.strerror or exc}",
                         "give a file path in an existing, writable folder") from None
    finally:
        plt.close(fig)  # type: ignore[arg-type]


def save_attention_plot(path: Path, att: dict[str, list]) -> None:
    """The attention matrix of one translation: source tokens on the x axis, target
    tokens on the y axis, weights as grey levels (darker = more attention)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src, tgt, weights = att["source_tokens"], att["target_tokens"], att["weights"]
    width = min(20.0, 2.0 + 0.45 * len(src))
    height = min(20.0, 1.5 + 0.4 * len(tgt))
    fig, ax = plt.subplots(figsize=(width, height), dpi=120)
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src)), labels=src, rotation=60, ha="right")
    ax.set_yticks(range(len(tgt)), labels=tgt)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="attention weight")
    _save(fig, path)
