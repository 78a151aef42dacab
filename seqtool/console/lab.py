"""rich rendering for the lab: a terminal line chart, the variant and cell tables."""

from __future__ import annotations

from typing import Any

from seqtool.console import stdout_console


CURVE_COLOURS = ("cyan", "yellow", "green", "red", "magenta", "blue", "white")
OUTCOME_STYLE = {"converged": "green", "not converged": "yellow", "oscillating": "magenta",
                 "diverged": "bold red"}
_BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))  # [dx][dy]


def line_chart(curves: dict[str, list[float | None]], width: int = 64, height: int = 14,
               x_max: int | None = None, y_cap: float = 100.0) -> Any:
    """Curves on a log-scale y axis drawn with braille dots (2 x 4 per character),
    one colour per curve. None/NaN points leave gaps; values above y_cap sit on
    the top edge. Returns a rich Text."""
    import math

    from rich.text import Text

    finite = [v for c in curves.values() for v in c
              if v is not None and math.isfinite(v) and v > 0]
    if not finite:
        return Text("(nothing to plot: no finite positive values)")
    top = min(max(finite), y_cap)
    bottom = max(min(finite), top / 1e6)
    lo, hi = math.log10(bottom), math.log10(top)
    hi = hi if hi > lo else lo + 1.0
    cols, rows = 2 * width, 4 * height
    owner: list[list[int]] = [[-1] * width for _ in range(height)]
    bits: list[list[int]] = [[0] * width for _ in range(height)]

    def row_of(v: float) -> int:
        frac = (math.log10(min(max(v, bottom), top)) - lo) / (hi - lo)
        return round((1.0 - frac) * (rows - 1))

    for k, curve in enumerate(curves.values()):
        prev = None
        for px in range(cols):
            i = round(px * (len(curve) - 1) / (cols - 1)) if len(curve) > 1 else 0
            v = curve[i] if curve else None
            if v is None or not math.isfinite(v):
                prev = None
                continue
            y = row_of(v)
            span = range(min(y, prev), max(y, prev) + 1) if prev is not None else (y,)
            for py in span:
                cy, cx = py // 4, px // 2
                bits[cy][cx] |= _BRAILLE_BITS[px % 2][py % 4]
                owner[cy][cx] = k
            prev = y
    labels = {0: top, height // 2: 10 ** ((lo + hi) / 2), height - 1: bottom}
    text = Text()
    for r in range(height):
        label = f"{labels[r]:9.3g} ┤" if r in labels else " " * 9 + " │"
        text.append(label, style="dim")
        for c in range(width):
            ch = chr(0x2800 + bits[r][c]) if bits[r][c] else " "
            text.append(ch, style=CURVE_COLOURS[owner[r][c] % len(CURVE_COLOURS)]
                        if owner[r][c] >= 0 else None)
        text.append("\n")
    right = f"{x_max:,}" if x_max is not None else ""
    text.append(" " * 10 + "└" + "─" * (width - 1) + "\n", style="dim")
    text.append(" " * 10 + "0" + right.rjust(width - 1) + "  steps\n", style="dim")
    for k, name in enumerate(curves):
        text.append("  ■ ", style=CURVE_COLOURS[k % len(CURVE_COLOURS)])
        text.append(name)
    return text


def render_addition(result: dict[str, Any]) -> None:
    """binary-addition: loss curves in the terminal, a table of outcomes, the criteria."""
    from rich.markup import escape
    from rich.table import Table

    con = stdout_console()
    s = result["settings"]
    con.print(f"[bold]mean training loss per {s['window']} steps[/] "
              "(cross-entropy over 8 bits; log scale)")
    con.print(line_chart({v["name"]: v["losses"] for v in result["variants"]},
                         x_max=s["steps"]))
    table = Table(title=f"binary addition: hidden {s['hidden']}, {s['steps']:,} steps, seed "
                  f"{s['seed']}, clip {s['clip'] or 'off'}", title_justify="left")
    for col in ("variant", "outcome", "final loss", "steps to conv.", "accuracy", "max grad"):
        table.add_column(col, justify="left" if col in ("variant", "outcome") else "right",
                         no_wrap=True)
    for v in result["variants"]:
        style = OUTCOME_STYLE.get(v["outcome"], "")
        final = "nan/inf" if v["final_loss"] is None else f"{v['final_loss']:.3g}"
        grad = "inf" if v["max_grad_norm"] is None else f"{v['max_grad_norm']:.3g}"
        stc = "-" if v["steps_to_converge"] is None else f"{v['steps_to_converge']:,}"
        table.add_row(escape(v["name"]), f"[{style}]{v['outcome']}[/]", final, stc,
                      f"{v['accuracy']:.1%}", grad)
    con.print(table)
    con.print("[dim]accuracy: held-out additions (never trained on) with all 8 bits right; "
              "outcome criteria: seqtool lab binary-addition --help[/]")
    if result.get("plot"):
        con.print(f"wrote {escape(result['plot'])}")


def render_cells(result: dict[str, Any]) -> None:
    """lab cells: parameters, speed and perplexity per cell in one table."""
    from rich.table import Table

    con = stdout_console()
    trained = any("valid_ppl" in r for r in result["cells"])
    title = (f"cells: embedding = hidden {result['hidden']}, {result['layers']} layer(s), "
             f"vocabulary {result['vocab_size']:,}, batch {result['batch_size']} x "
             f"{result['bptt']}")
    table = Table(title=title, title_justify="left")
    cols = ["cell", "recurrent params", "LM params", "train tokens/s"]
    if trained:
        cols += ["steps", "tokens seen", "valid ppl"]
    for col in cols:
        table.add_column(col, justify="left" if col == "cell" else "right")
    for r in result["cells"]:
        row = [r["name"], f"{r['recurrent_parameters']:,}", f"{r['parameters']:,}",
               f"{r['tokens_per_s']:,.0f}"]
        if trained:
            row += [f"{r['train_steps']:,}", f"{r['train_tokens']:,}", f"{r['valid_ppl']:.1f}"]
        table.add_row(*row)
    con.print(table)
    by = {r["name"]: r for r in result["cells"]}
    if "gru" in by and "lstm" in by:
        g, lstm = by["gru"]["recurrent_parameters"], by["lstm"]["recurrent_parameters"]
        con.print(f"GRU: {g:,} recurrent parameters, {lstm - g:,} fewer than LSTM's "
                  f"{lstm:,} (3 gate blocks instead of 4).")
    if trained:
        con.print(f"[dim]each cell trained {result['seconds']:g} s on {result['corpus']} "
                  "(same data, Adam, clip 0.25); perplexity on its validation split.[/]")


def render_gradients(result: dict[str, Any]) -> None:
    """lab gradients: the relative norms by distance in the terminal and one table."""
    from rich.table import Table

    con = stdout_console()
    s = result["settings"]
    rows = result["cells"]
    con.print(f"[bold]||dL/dh_(T-k)|| / ||dL/dh_T|| at initialisation[/] against k (log scale; "
              f"T = {s['steps']}, hidden {s['hidden']})")
    curves = {}
    for r in rows:
        dh = r["init"]["dh"]
        curves[r["cell"]] = [v / dh[0] if dh[0] > 0 else None for v in dh]
    con.print(line_chart(curves, x_max=s["steps"] - 1, y_cap=1.0))
    phases = ["init"] + (["trained"] if any("trained" in r for r in rows) else [])
    for phase in phases:
        what = ("at initialisation" if phase == "init"
                else f"after {s['train_steps']} training steps")
        table = Table(title=f"gradient reaching k steps back, {what}", title_justify="left")
        dists = list(rows[0][phase]["relative"])
        for col in ["cell", "params", *[f"k={d}" for d in dists], "per step", "R²"]:
            table.add_column(col, justify="left" if col == "cell" else "right", no_wrap=True)
        if phase == "trained":
            table.add_column("accuracy", justify="right")
        for r in rows:
            p = r[phase]
            cells = [r["cell"], f"{r['parameters']:,}",
                     *[f"{p['relative'][d]:.1e}" for d in dists],
                     "-" if p["factor"] is None else f"{p['factor']:.3f}",
                     "-" if p["r2"] is None else f"{p['r2']:.3f}"]
            if phase == "trained":
                cells.append(f"{p['accuracy']:.0%}")
            table.add_row(*cells)
        con.print(table)
    con.print(f"[dim]per step: the factor exp(slope) of log-norm against k; R² near 1 = geometric "
              f"decay. Task: {s['task']}; chance accuracy {1 / s['symbols']:.0%}.[/]")
    if result.get("plot"):
        con.print(f"wrote {result['plot']}")
