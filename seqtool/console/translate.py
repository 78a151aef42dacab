"""rich rendering for translation: translations, attention heat maps, scores."""

from __future__ import annotations

from typing import Any

from seqtool.console import stdout_console, stderr_console


def render_translation(t: Any, show_attention: bool = False) -> None:
    """One sentence: the best translation (plain: just its text), the n-best list with
    scores, and optionally the attention heat map."""
    from rich.markup import escape

    con = stdout_console()
    if len(t.texts) == 1 and not con.is_terminal:
        con.print(escape(t.texts[0]))
    elif len(t.texts) == 1:
        con.print(f"[bold green]{escape(t.texts[0])}[/]")
    else:
        from rich.table import Table

        table = Table("#", "translation", "score", box=None)
        for i, (text, score) in enumerate(zip(t.texts, t.scores, strict=False), 1):
            table.add_row(str(i), escape(text), f"{score:.3f}")
        con.print(table)
    if show_attention and t.attention:
        con.print(attention_heat_map(t.attention))


SHADES = ((0.05, " "), (0.15, "·"), (0.3, "░"), (0.5, "▒"), (0.7, "▓"), (2.0, "█"))


def _shade(w: float) -> str:
    """A block character for an attention weight (readable without colours too)."""
    return next(ch for limit, ch in SHADES if w < limit)


def attention_heat_map(att: dict[str, Any]) -> Any:
    """Source tokens as columns, target tokens as rows, each cell shaded by its weight
    (blue background, and a block character that survives plain output)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="attention (rows: target, columns: source)", title_justify="left",
                  box=None, padding=(0, 1), show_edge=False)
    table.add_column("", justify="right", no_wrap=True, style="bold")
    for tok in att["source_tokens"]:
        table.add_column(escape(tok), justify="center", no_wrap=True, min_width=2)
    for tok, row in zip(att["target_tokens"], att["weights"], strict=False):
        cells = []
        for w in row:
            level = min(255, int(w * 255))
            shade = _shade(w)
            fg = "white" if w > 0.5 else "black"
            cells.append(f"[{fg} on rgb({255 - level},{255 - level},255)]{shade * 2}[/]")
        table.add_row(escape(tok), *cells)
    return table


def render_scores(result: dict[str, Any], to_stdout: bool = False) -> None:
    """BLEU and chrF with their signatures (on stderr after translating to stdout; on
    stdout for `evaluate translate`), and sentences/s when measured."""
    from rich.markup import escape

    con = stdout_console() if to_stdout else stderr_console()
    line = (f"BLEU [bold]{result['bleu']:.2f}[/]  chrF [bold]{result['chrf']:.2f}[/] on "
            f"{result['sentences']:,} sentences")
    if "split" in result:
        where = (f"{result['corpus']} {result['split']}" if result["split"] != "file"
                 else f"{result['corpus']} vs {result['reference']}")
        langs = f" {result['src']} -> {result['tgt']}" if result.get("src") else ""
        line += (f" of {escape(where)}{langs} (beam {result['beam']}, "
                 f"{result['sentences_per_s']:,.1f} sentences/s)")
    con.print(line, soft_wrap=True)
    con.print(f"[dim]BLEU signature: {result['bleu_signature']}[/]", soft_wrap=True)
    con.print(f"[dim]chrF signature: {result['chrf_signature']}[/]", soft_wrap=True)
