"""rich rendering for word2vec: training progress, neighbours, scores, init reports."""

from __future__ import annotations

from typing import Any

from seqtool.console import stdout_console, stderr_console


class Word2VecReporter:
    """word2vec training progress: words done, words/s, learning rate, loss, ETA."""

    def __init__(self) -> None:
        self.con = stderr_console()
        self.progress: Any = None
        self.task: Any = None

    def on_start(self, info: dict[str, Any]) -> None:
        from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(
            TextColumn(f"[bold]word2vec[/] ({info.get('engine', '?')})"), BarColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.con,
            disable=not self.con.is_terminal)
        self.progress.start()
        self.task = self.progress.add_task("word2vec", total=info["total_words"], stats="")

    def on_step(self, s: dict[str, Any]) -> None:
        stats = (f"epoch {s['epoch']} loss {s['loss']:.3f} lr {s['lr']:.4f} "
                 f"{s['words_per_s']:,.0f} words/s")
        self.progress.update(self.task, completed=s["words"], stats=stats)

    def on_end(self, summary: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()


def render_neighbours(result: dict[str, Any]) -> None:
    """`similar` / `analogy`: the nearest words with their cosine similarity and a bar."""
    from rich.markup import escape
    from rich.table import Table

    con = stdout_console()
    if result["negative"]:
        a, b, c = (escape(w) for w in result["query"])
        title = f"{a} - {b} + {c}"
    else:
        title = f"closest to “{escape(result['query'][0])}”"
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("word")
    table.add_column("cosine", justify="right")
    table.add_column("", min_width=20)
    for i, n in enumerate(result["neighbours"], 1):
        bar = "█" * max(1, round(20 * max(n["cosine"], 0.0)))
        table.add_row(str(i), escape(n["word"]), f"{n['cosine']:.4f}", f"[cyan]{bar}[/]")
    con.print(table)
    for typed, found in result.get("resolved", {}).items():
        con.print(f"[dim]{escape(typed)}: not in the vocabulary, used {escape(found)} "
                  "(the same word in another case)[/]")


def render_word2vec_eval(result: dict[str, Any]) -> None:
    """`evaluate word2vec`: WordSim-353 correlation, analogy accuracy per section."""
    from rich.markup import escape
    from rich.table import Table

    con = stdout_console()
    ws, an = result["wordsim"], result["analogies"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1%}"

    con.print(f"WordSim-353: Spearman [bold]{ws['spearman']:.4f}[/] (Pearson "
              f"{ws['pearson']:.4f}) on {ws['pairs']} pairs, {ws['oov_pairs']} with unknown "
              "words skipped", soft_wrap=True)
    scope = f"{an['restrict_vocab']:,} most frequent words" if an["restrict_vocab"] else "all words"
    table = Table(title=f"analogies (a : b = c : ?, 3CosAdd over the {scope})",
                  title_justify="left")
    for col in ("section", "correct", "questions", "accuracy"):
        table.add_column(col, justify="left" if col == "section" else "right")
    for s in an["sections"]:
        table.add_row(escape(s["section"]), f"{s['correct']:,}", f"{s['total']:,}",
                      pct(s["accuracy"]))
    table.add_row("[bold]semantic[/]", "", "", pct(an["semantic"]))
    table.add_row("[bold]syntactic[/]", "", "", pct(an["syntactic"]))
    table.add_row("[bold]all[/]", f"{an['correct']:,}", f"{an['answered']:,}",
                  f"[bold]{pct(an['accuracy'])}[/]")
    con.print(table)
    con.print(f"[dim]{an['skipped_oov']:,} questions with unknown words skipped; "
              f"{result['words']:,} vectors of {result['dim']} dimensions from "
              f"{escape(result['vectors'])}[/]", soft_wrap=True)


def print_init_embeddings(report: dict[str, Any]) -> None:
    """--init-embeddings: how many vocabulary words started from the vectors file."""
    from rich.markup import escape

    con = stdout_console()
    for side in ("vocabulary", "source", "target"):
        if side in report:
            r = report[side]
            con.print(f"--init-embeddings: {r['found']:,} of {r['words']:,} {side} words found "
                      f"in {escape(report['file'])}; {r['copied']:,} copied"
                      + (" (the rest sit in adaptive tail clusters of smaller size)"
                         if r["copied"] < r["found"] else ""), soft_wrap=True)
