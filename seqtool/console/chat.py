"""rich rendering for chat: banner, prompt, replies, history, the evaluation table."""

from __future__ import annotations

import contextlib
from typing import Any

from seqtool.console import stdout_console, stderr_console


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
