"""rich rendering for run folders: sparklines of a run's validation curves (also in
`seqtool info`), the `seqtool plot` table, the `seqtool average` result."""

from __future__ import annotations

import math
from typing import Any

from seqtool.console import stdout_console

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 48) -> str:
    """One block character per value, the lowest ▁ and the highest █ (all ▄ when
    they are equal); more than `width` values are averaged in `width` equal shares.
    Non-finite values are left out."""
    vals = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(vals) > width:
        n = len(vals)
        vals = [sum(part) / len(part) for part in
                (vals[i * n // width:(i + 1) * n // width] for i in range(width))]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return SPARK[3] * len(vals)
    top = len(SPARK) - 1
    return "".join(SPARK[round((v - lo) / (hi - lo) * top)] for v in vals)


def curve_line(label: str, steps: list[int], values: list[float], higher_is_better: bool
               ) -> str:
    """'validation loss 5.12 ▇▅▃▂▁ 2.31 (8 evaluations, steps 500-4,000; best 2.29 at
    step 3,500)' as rich markup."""
    pick = max if higher_is_better else min
    best = pick(range(len(values)), key=values.__getitem__)
    return (f"{label} {values[0]:.4g} [cyan]{sparkline(values)}[/] {values[-1]:.4g} "
            f"[dim]({len(values)} evaluation{'s' if len(values) != 1 else ''}, steps "
            f"{steps[0]:,}-{steps[-1]:,}; best {values[best]:.4g} at step {steps[best]:,})[/]")


def print_history(history: dict[str, Any]) -> None:
    """`seqtool info`'s lines for the run a checkpoint belongs to."""
    import importlib.util

    from rich.markup import escape

    con = stdout_console()
    for key, label, higher in (("valid_loss", "validation loss", False),
                               ("valid_bleu", "validation BLEU", True)):
        if history.get(key):
            con.print(curve_line(label, history["steps"], history[key], higher))
    run = escape(history["run"])
    if importlib.util.find_spec("matplotlib") is None:
        extra = escape("'seqtool[plot]'")
        con.print(f"[dim]every curve as a PNG: pip install {extra}, then seqtool plot "
                  f"{run} --out curves.png[/]")
    else:
        con.print(f"[dim]every curve as a PNG: seqtool plot {run} --out curves.png[/]")


def render_plot(result: dict[str, Any]) -> None:
    """`seqtool plot`: one row per run, then the file written."""
    from rich.markup import escape
    from rich.table import Table

    con = stdout_console()
    table = Table(title="runs", title_justify="left")
    for col in ("run", "evaluations", "steps", "tokens", "best valid loss", "best BLEU",
                "validation loss"):
        table.add_column(col, justify="left" if col in ("run", "validation loss") else "right")
    for r in result["runs"]:
        loss, bleu = r.get("best_valid_loss"), r.get("best_valid_bleu")
        table.add_row(
            escape(r["name"]), str(r["evaluations"]), f"{r['last_step']:,}",
            f"{r['tokens']:,}" if isinstance(r.get("tokens"), int) else "-",
            f"{loss['value']:.4f} (step {loss['step']:,})" if loss else "-",
            f"{bleu['value']:.2f} (step {bleu['step']:,})" if bleu else "-",
            f"[cyan]{sparkline(r['valid_loss'], 32)}[/]")
    con.print(table)
    con.print(f"wrote {escape(result['out'])} ({', '.join(result['panels'])} against "
              f"{result['x']})")


def render_average(result: dict[str, Any]) -> None:
    from rich.markup import escape

    con = stdout_console()
    steps = [s for s in result["steps"] if s is not None]
    at = f" (steps {', '.join(f'{s:,}' for s in steps)})" if len(steps) == len(
        result["steps"]) else ""
    con.print(f"averaged {len(result['checkpoints'])} {result['kind']} checkpoints{at}: "
              f"{result['parameters']:,} parameters, wrote {escape(result['out'])} "
              f"({result['bytes'] / 1e6:.1f} MB)")
