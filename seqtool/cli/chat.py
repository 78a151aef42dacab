"""Dialogue commands: train chat, chat, evaluate chat."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from seqtool.cli.app import (CONTEXT, cli, config_option, config_to_resume, device_option,
                             evaluate, interrupt_on_signals, json_option, quantize_option,
                             resolve_device,
                             run_options, stdin_lines, train)
from seqtool.config import ChatSettings
from seqtool.models.registry import archs


@train.command("chat", context_settings=CONTEXT)
@click.option("--model", "arch", type=click.Choice(archs("chat")),
              help="Architecture (sets model.arch): the single-turn seq2seq baseline, HRED "
                   "or VHRED.")
@click.option("--corpus", help="Imported dialogue corpus (dailydialog, asdc_ja).")
@click.option("--train-file", type=click.Path(path_type=Path),
              help="Plain dialogues: one per line, utterances separated by __eou__.")
@click.option("--valid-file", type=click.Path(path_type=Path), help="Validation dialogues.")
@click.option("--config", "preset",
              help="Preset (chat-dailydialog-seq2seq/-hred/-vhred, chat-tiny) or TOML file; "
                   "default with --corpus dailydialog: chat-dailydialog-<model>.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(path_type=Path),
              help="Tokenizer folder (default: train one on the training dialogues).")
@run_options("chat", "model.kl_anneal=cyclical")
def train_chat_cmd(arch: str | None, corpus: str | None, train_file: Path | None,
                   valid_file: Path | None, preset: str | None, tokenizer_dir: Path | None,
                   overrides: tuple[str, ...], out: Path | None, resume: Path | None,
                   threads: int, device: str, as_json: bool) -> None:
    """Train a dialogue model: HRED, VHRED or the single-turn seq2seq baseline.

    All three learn from the same (context, reply) windows: every utterance but
    the first is a reply, conditioned on up to model.context_turns utterances
    before it (seq2seq: the last one only). Validates each epoch: loss and
    perplexity (VHRED: the bound), and for VHRED the KL per reply; RUN/best has
    the lowest validation perplexity. Ctrl-C saves RUN/last; --resume RUN goes on.

    \b
    Example:
      seqtool train chat --model hred --corpus dailydialog --out runs/chat-hred
      seqtool train chat --model vhred --corpus dailydialog --set model.kl_anneal=cyclical
      seqtool train chat --train-file d.txt --valid-file v.txt --config chat-tiny
    """
    from seqtool.commands.train_chat import train_chat
    from seqtool.configfile import load_config
    from seqtool.console import RichReporter, print_json, stdout_console

    if resume is not None:
        cfg = config_to_resume(resume, overrides, arch, corpus, train_file, valid_file, preset,
                               tokenizer_dir)
    else:
        if preset is None and corpus == "dailydialog" and not train_file:
            preset = f"chat-dailydialog-{arch or 'hred'}"
        data = {"corpus": corpus, "train_file": str(train_file) if train_file else None,
                "valid_file": str(valid_file) if valid_file else None}
        cfg = load_config("chat", preset, overrides, {
            "data": data, "tokenizer": {"path": str(tokenizer_dir) if tokenizer_dir else None},
            "model": {"arch": arch}})
    interrupt_on_signals()
    summary = train_chat(cfg, out, resume, RichReporter(), resolve_device(device), threads)
    if as_json:
        print_json(summary)
        return
    best = summary["best"]
    stdout_console().print(
        f"done ({summary['stop_reason']}): {summary['arch']}, {summary['steps']} steps on "
        f"{summary['train_replies']:,} replies, best {summary['metric']} "
        + (f"{best:.2f}" if best is not None else "-") + f"; checkpoints in {summary['run_dir']}")


@cli.command("chat", context_settings=CONTEXT)
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="Chat checkpoint or run folder (default: the shipped DailyDialog model).")
@config_option("--samples", ChatSettings, "samples", default=...)
@config_option("--temperature", ChatSettings, "temperature", default=...)
@config_option("--top-p", ChatSettings, "top_p", default=...)
@click.option("--greedy", is_flag=True, help="Most probable words instead of sampling "
              "(VHRED: still one z per reply).")
@config_option("--context", ChatSettings, "context",
               "Utterances the model sees (default: as trained).")
@config_option("--max-len", ChatSettings, "max_len",
               "Reply length limit in tokens (default: the model's max_utt_len).")
@click.option("--seed", type=int, help="Random seed (the same seed, the same replies).")
@device_option
@quantize_option
@json_option
def chat_cmd(model_path: Path | None, samples: int, temperature: float, top_p: float,
             greedy: bool, context: int | None, max_len: int | None, seed: int | None,
             device: str, quantize: str | None, as_json: bool) -> None:
    """Talk with a dialogue model that keeps the conversation's context.

    In a terminal: a prompt with line editing and history; /reset, /history,
    /samples N, /context N, /help, /quit; Ctrl-D and Ctrl-C leave. When stdin
    is not a terminal, each input line is one turn and each reply one output
    line (--samples N: N lines per turn; --json: one object per turn,
    {"turn": n, "input": ..., "replies": [...]}); empty lines are skipped and
    notices go to stderr, so chats can be scripted.

    \b
    Example:
      seqtool chat --model runs/chat-vhred --samples 3
      printf 'hi , how are you ?\\nwhat about dinner ?\\n' | seqtool chat --model RUN --json
    """
    from seqtool.commands.chat import ChatSession
    from seqtool.console import warn
    from seqtool.loading import load_chatbot

    dev = resolve_device(device, quantize)
    loaded = load_chatbot(model_path, dev, quantize)
    m = loaded.config.model
    settings = ChatSettings(samples=samples, context=context or m.context_turns,
                            temperature=temperature, top_p=top_p, greedy=greedy,
                            max_len=max_len or m.max_utt_len)
    session = ChatSession(loaded, settings, dev, seed)
    if session.context_notice() and context is not None:
        warn(session.context_notice())
    if sys.stdin.isatty() and not as_json:
        from seqtool.console.chat import chat_banner, chat_input

        chat_banner(str(loaded.folder), m.arch, 1 if session.single_turn else settings.context,
                    samples)
        run_session(session, chat_input)
    else:
        chat_lines(session, as_json)


def run_session(session: Any, read: Callable[[int], str]) -> None:
    """The interactive loop: read(turn) gives a line; empty lines re-prompt; Ctrl-D,
    Ctrl-C and /quit leave cleanly."""
    from seqtool.console.chat import render_chat_history, render_chat_message, render_chat_replies
    from seqtool.console import warn

    try:
        while True:
            try:
                line = read(session.turns + 1)
            except UnicodeDecodeError:
                warn("that line is not UTF-8; type it again")
                continue
            if line.strip().startswith("/"):
                res = session.command(line)
                if res.quit:
                    break
                if res.history is not None:
                    render_chat_history(res.history)
                elif res.message:
                    render_chat_message(res.message)
                continue
            turn = session.reply(line)
            if turn is None:
                continue  # empty: nothing sent, ask again
            for notice in turn.notices:
                warn(notice)
            render_chat_replies(turn.replies)
    except (EOFError, KeyboardInterrupt):
        pass
    render_chat_message("bye", to_stdout=False)


def chat_lines(session: Any, as_json: bool) -> None:
    """Line mode: one turn per input line, its replies (or one JSON object) on stdout,
    flushed per turn; slash commands work and answer on stderr."""
    from seqtool.console.chat import render_chat_history, render_chat_message
    from seqtool.console import warn

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    out = sys.stdout
    for n, line in stdin_lines("seqtool chat ..."):
        line = line.rstrip("\r\n")
        if line.strip().startswith("/"):
            res = session.command(line)
            if res.quit:
                break
            if res.history is not None:
                render_chat_history(res.history, to_stdout=False)
            elif res.message:
                render_chat_message(res.message, to_stdout=False)
            continue
        turn = session.reply(line)
        if turn is None:
            warn(f"line {n} is empty: skipped (nothing was sent to the model)")
            continue
        for notice in turn.notices:
            warn(f"line {n}: {notice}")
        if as_json:
            out.write(json.dumps(turn.to_json(), ensure_ascii=False) + "\n")
        else:
            out.writelines(reply + "\n" for reply in turn.replies)
        out.flush()


@evaluate.command("chat", context_settings=CONTEXT)
@click.option("--model", "model_paths", multiple=True, type=click.Path(path_type=Path),
              help="Chat checkpoint or run folder; repeat it to compare models in one table "
                   "(default: the shipped model).")
@click.option("--corpus", help="Dialogue corpus (default: the one the model was trained on).")
@click.option("--split", default="test", show_default=True, help="Split of --corpus.")
@click.option("--file", type=click.Path(path_type=Path),
              help="Plain dialogues instead: one per line, utterances separated by __eou__.")
@click.option("--sample", is_flag=True, help="Sample the replies (default: greedy; VHRED "
              "draws z from the prior either way).")
@config_option("--temperature", ChatSettings, "temperature", "With --sample.", default=1.0)
@config_option("--top-p", ChatSettings, "top_p", "With --sample.", default=1.0)
@click.option("--max-len", type=click.IntRange(min=1),
              help="Reply length limit (default: max_utt_len).")
@click.option("--limit", default=0, show_default=True, help="Only the first N replies (0 = all).")
@click.option("--seed", default=0, show_default=True, help="Random seed (z and sampling).")
@click.option("--batch-size", default=64, show_default=True, help="Replies decoded together.")
@device_option
@quantize_option
@json_option
def evaluate_chat_cmd(model_paths: tuple[Path, ...], corpus: str | None, split: str,
                      file: Path | None, sample: bool, temperature: float, top_p: float,
                      max_len: int | None, limit: int, seed: int, batch_size: int,
                      device: str, quantize: str | None, as_json: bool) -> None:
    """Perplexity (VHRED: the bound), KL per reply, BLEU-1/2, distinct-1/2, reply length.

    Every reply of the split is scored: perplexity per model token of the reference
    reply given its context; then a reply is generated for each context and
    scored against the reference with sacrebleu (BLEU-1/2, signature shown);
    distinct-n counts unique n-grams over all generated replies together.

    \b
    Example:
      seqtool evaluate chat --model runs/chat-hred --corpus dailydialog --split test
      seqtool evaluate chat --model runs/chat-seq2seq --model runs/chat-hred \\
          --model runs/chat-vhred --corpus dailydialog --split test
    """
    from seqtool.commands.evaluate import evaluate_chat
    from seqtool.console import print_json
    from seqtool.console.chat import render_chat_eval

    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch-size") from None
    if limit < 0:
        raise click.BadParameter("must be >= 0 (0 = all)", param_hint="--limit") from None
    from seqtool.loading import load_chatbot

    dev = resolve_device(device, quantize)
    results = [evaluate_chat(load_chatbot(path, dev, quantize), corpus=corpus, split=split,
                             file=file, batch_size=batch_size, max_len=max_len, greedy=not sample,
                             temperature=temperature, top_p=top_p, limit=limit, seed=seed)
               for path in (model_paths or (None,))]
    if as_json:
        for r in results:
            print_json(r)
    else:
        render_chat_eval(results)
