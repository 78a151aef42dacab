"""rich output: the one console wrapper, the training reporter, error printing.
Area renderers live in seqtool/console/{translate,lab,chat,word2vec}.py.

Results go to stdout; progress, warnings and errors to stderr. When stdout is
not a terminal, output is plain (no colour, no boxes).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any


def stdout_console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=not sys.stdout.isatty())


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    stderr_console().print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def print_error(message: str, hint: str | None) -> None:
    """One error line plus a hint line, on stderr."""
    from rich.markup import escape

    con = stderr_console()
    con.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        con.print(f"[dim]hint:[/] {escape(hint)}", soft_wrap=True)


class RichReporter:
    """Training progress: a bar with loss, perplexity, tokens/s and ETA; a line per eval."""

    def __init__(self) -> None:
        self.con = stderr_console()
        self.progress: Any = None
        self.task: Any = None
        self.metric = "valid_ppl"  # the score that picks best/

    def on_start(self, info: dict[str, Any]) -> None:
        self.metric = info.get("metric", self.metric)
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.con, transient=False,
            disable=not self.con.is_terminal)
        self.progress.start()
        self.task = self.progress.add_task("train", total=info["total_steps"],
                                           completed=info["start_step"], stats="")

    def on_step(self, s: dict[str, Any]) -> None:
        stats = (f"loss {s['loss']:.3f} ppl {s['ppl']:.1f} lr {s['lr']:.2e} "
                 f"{s['tokens_per_s']:,.0f} tok/s")
        self.progress.update(self.task, completed=s["step"], stats=stats)
        if not self.con.is_terminal:
            self.con.print(f"step {s['step']}/{s['total_steps']} epoch {s['epoch']} {stats}")

    def on_eval(self, m: dict[str, Any]) -> None:
        extra = " ".join(f"{k[6:]} {v:.4g}" for k, v in m.items()
                         if k.startswith("valid_") and k not in ("valid_loss", "valid_ppl"))
        best = "  [green]best[/]" if m.get("best") == m.get(self.metric) else ""
        self.progress.console.print(
            f"eval step {m['step']} epoch {m['epoch']:.2f}: valid loss {m['valid_loss']:.4f} "
            f"ppl {m['valid_ppl']:.2f} {extra}{best}")

    def on_end(self, summary: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()


def render_prediction(result: dict[str, Any]) -> None:
    """The k most probable next words with probability and a bar, then the prediction."""
    from rich.markup import escape
    from rich.table import Table

    con = stdout_console()
    top = max((c["probability"] for c in result["candidates"]), default=1.0) or 1.0
    table = Table(title=f"next word after “{escape(result['prompt'])}”", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("word")
    table.add_column("probability", justify="right")
    table.add_column("", min_width=20)
    for i, c in enumerate(result["candidates"], 1):
        bar = "█" * max(1, round(20 * c["probability"] / top))
        table.add_row(str(i), escape(c["token"]), f"{c['probability']:.4f}", f"[cyan]{bar}[/]")
    con.print(table)
    con.print(f"Prediction: {escape(result['prompt'])} [bold green]"
              f"{escape(result['prediction'])}[/]")


def render_info(info: dict[str, Any]) -> None:
    from rich.markdown import Markdown
    from rich.table import Table

    con = stdout_console()
    if info["card"]:
        con.print(Markdown(info["card"]))
    table = Table(title="parameters", title_justify="left")
    table.add_column("component")
    table.add_column("parameters", justify="right")
    for name, n in info["parameters"].items():
        table.add_row(name, f"{n:,}")
    table.add_row("[bold]total[/]", f"[bold]{info['total_parameters']:,}[/]")
    con.print(table)
    size = sum(info["files"].values())
    vocab = info["vocab_size"]
    vocab = (f"{vocab[0]:,} source / {vocab[1]:,} target" if isinstance(vocab, list)
             else f"{vocab:,}")
    con.print(f"{info['kind']} model, {info['tokenizer']} tokenizer, vocabulary "
              f"{vocab}, weights {info['weights_dtype']}, "
              f"{size / 1e6:.1f} MB in {info['path']}")


@contextlib.contextmanager
def line_progress(label: str) -> Iterator[Callable[[int], None]]:
    """A lines-done counter with lines/s on stderr, shown only when stderr is a terminal;
    yields advance(n)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    con = stderr_console()
    bar = Progress(SpinnerColumn(), TextColumn(f"[bold]{label}[/]"),
                   TextColumn("{task.completed:,} lines"),
                   TextColumn("{task.fields[rate]}"),
                   TimeElapsedColumn(), console=con, transient=True,
                   redirect_stdout=False,  # stdout carries the results, never the bar
                   disable=not con.is_terminal)
    task = bar.add_task(label, total=None, rate="")

    def advance(n: int) -> None:
        bar.advance(task, n)
        speed = bar.tasks[0].speed
        if speed:
            bar.update(task, rate=f"{speed:,.0f} lines/s")

    with bar:
        yield advance


def note(message: str) -> None:
    """A progress line on stderr, only when stderr is a terminal."""
    con = stderr_console()
    if con.is_terminal:
        con.print(f"[dim]{message}[/]")
