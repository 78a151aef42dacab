"""rich output: the one console wrapper, the training reporter, error printing.

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

    def __init__(self, json_lines: bool = False) -> None:
        self.con = stderr_console()
        self.json_lines = json_lines
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


# --------------------------------------------------------------------------- translate
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
        for i, (text, score) in enumerate(zip(t.texts, t.scores), 1):
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
    for tok, row in zip(att["target_tokens"], att["weights"]):
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


# --------------------------------------------------------------------------- lab
CURVE_COLOURS = ("cyan", "yellow", "green", "red", "magenta", "blue", "white")
OUTCOME_STYLE = {"converged": "green", "not converged": "yellow", "oscillating": "magenta",
                 "diverged": "bold red"}
_BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))  # [dx][dy]


def note(message: str) -> None:
    """A progress line on stderr, only when stderr is a terminal."""
    con = stderr_console()
    if con.is_terminal:
        con.print(f"[dim]{message}[/]")


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


# --------------------------------------------------------------------------- chat
def chat_banner(model: str, arch: str, context: int, samples: int) -> None:
    """The interactive session's first lines (stderr)."""
    con = stderr_console()
    con.print(f"[bold]seqtool chat[/] with {arch} model [cyan]{model}[/] (sees the last "
              f"{context} utterance{'s' if context != 1 else ''}; {samples} repl"
              f"{'ies' if samples != 1 else 'y'} per turn)")
    con.print("[dim]/help lists the commands; Ctrl-D or /quit leaves[/]")


def chat_input(turn: int) -> str:
    """One line from the terminal with a rich prompt (line editing and the arrow-key
    history of readline). Raises EOFError (Ctrl-D) or KeyboardInterrupt (Ctrl-C)."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (input() gains editing and history)
    return stdout_console().input(f"[bold green]you {turn}>[/] ")


def render_chat_replies(replies: list[str]) -> None:
    """The model's replies in an interactive session (numbered when several)."""
    from rich.markup import escape

    con = stdout_console()
    for i, text in enumerate(replies, 1):
        label = f"bot {i}" if len(replies) > 1 else "bot"
        con.print(f"[bold cyan]{label}>[/] {escape(text) or '[dim](empty reply)[/]'}",
                  soft_wrap=True)


def render_chat_message(message: str, to_stdout: bool = True) -> None:
    """A slash command's answer (stdout in a session, stderr in line mode)."""
    from rich.markup import escape

    con = stdout_console() if to_stdout else stderr_console()
    con.print(f"[dim]{escape(message)}[/]", soft_wrap=True)


def render_chat_history(history: list[tuple[str, str]], to_stdout: bool = True) -> None:
    from rich.markup import escape

    con = stdout_console() if to_stdout else stderr_console()
    if not history:
        con.print("[dim](no conversation yet)[/]")
    for speaker, text in history:
        colour = "green" if speaker == "you" else "cyan"
        con.print(f"[{colour}]{speaker}:[/] {escape(text)}", soft_wrap=True)


def render_chat_eval(results: list[dict[str, Any]]) -> None:
    """One row per model: perplexity (VHRED: the bound, starred), KL per reply, BLEU-1/2,
    distinct-1/2, average length; then the BLEU signature and what was decoded how."""
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    con = stdout_console()
    first = results[0]
    where = (f"{first['corpus']} {first['split']}" if first["split"] != "file"
             else first["corpus"])
    table = Table(title=f"{escape(where)}: {first['replies']:,} replies", title_justify="left")
    for col in ("model", "arch", "ppl", "KL", "BLEU-1", "BLEU-2", "dist-1", "dist-2", "len"):
        table.add_column(col, justify="left" if col in ("model", "arch") else "right")
    for r in results:
        folder = Path(r["model"])
        name = folder.parent.name if folder.name in ("best", "last") else folder.name
        ppl = f"{r['perplexity']:.2f}" + ("*" if r["perplexity_is_bound"] else "")
        kl = "-" if r["kl_per_reply"] is None else f"{r['kl_per_reply']:.3f}"
        table.add_row(escape(name), r["arch"], ppl, kl, f"{r['bleu1']:.2f}",
                      f"{r['bleu2']:.2f}", f"{r['distinct1']:.4f}", f"{r['distinct2']:.4f}",
                      f"{r['avg_len']:.2f}")
    con.print(table)
    notes = [("ppl: per model token of the reference reply (words for a word tokenizer; "
              "EOS counted)"),
             "KL: nats per reply (VHRED)",
             (f"BLEU-1/2: sacrebleu corpus BLEU, max_ngram_order 1 / 2, signature "
              f"{first['bleu_signature']}"),
             "dist-n: distinct n-grams / all n-grams over all replies (model tokens)",
             "len: average reply length in model tokens",
             f"replies decoded {first['decoding']}"]
    if any(r["perplexity_is_bound"] for r in results):
        notes.insert(1, "*: an upper bound (VHRED: the negative ELBO per token)")
    for line in notes:
        con.print(f"[dim]{escape(line)}[/]", soft_wrap=True)


# --------------------------------------------------------------------------- word2vec
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
            TextColumn("[bold]word2vec[/]"), BarColumn(), TextColumn("{task.fields[stats]}"),
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
