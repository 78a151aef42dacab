"""Corpora, tokenizers and checkpoints: corpus, tokenizer, info, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from seqtool.cli.app import CONTEXT, cli, config_option, json_option
from seqtool.config import TokenizerConfig


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path), required=False)
@json_option
def info(checkpoint: Path | None, as_json: bool) -> None:
    """Show a checkpoint's model card, parameter counts per component, and the
    validation curve of its run (a sparkline per evaluation).

    \b
    Example:
      seqtool info runs/wt2/best
      seqtool info --json        # the shipped default model
    """
    from seqtool.commands.info import checkpoint_info
    from seqtool.console import print_json, render_info
    from seqtool.console.runs import print_history

    result = checkpoint_info(checkpoint)
    if as_json:
        print_json(result)
        return
    render_info(result)
    if result["history"]:  # a checkpoint of a run folder: its validation curve
        print_history(result["history"])


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--half", is_flag=True, help="Store the weights in fp16 (half the size).")
@click.option("--int8", is_flag=True,
              help="Store dynamic int8 weights with fp32 scales (CPU inference; README, "
                   "\"int8 inference\").")
def export(source: Path, dest: Path, half: bool, int8: bool) -> None:
    """Copy a checkpoint without training state (optionally fp16 or int8) for shipping.

    \b
    Example:
      seqtool export runs/wt2/best checkpoints/lm-wikitext2 --half
      seqtool export checkpoints/translate-de-en de-en-int8 --int8
    """
    from seqtool.commands.info import export_checkpoint
    from seqtool.console import stdout_console

    size = export_checkpoint(source, dest, half, int8)
    stdout_console().print(f"wrote {dest} ({size / 1e6:.1f} MB)")


@cli.group(context_settings=CONTEXT)
def corpus() -> None:
    """The corpus catalog and the local store ($SEQTOOL_HOME/corpora, default ~/.seqtool).

    \b
    Example:
      seqtool corpus list
      seqtool corpus import wikitext-2 --from ../shared/corpora/wikitext-2
    """


def _byte_progress(label: str) -> Any:
    """A rich progress line on stderr (silent when not a terminal) and its callback."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TransferSpeedColumn)

    from seqtool.console import stderr_console

    con = stderr_console()
    bar = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TextColumn("{task.fields[file]}"), console=con,
                   transient=True, disable=not con.is_terminal)
    task = bar.add_task(label, total=None, file="")

    def update(fname: str, done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, file=fname)
    return bar, update


@corpus.command("list", context_settings=CONTEXT)
@json_option
def corpus_list(as_json: bool) -> None:
    """List the catalogued corpora and whether each is imported.

    \b
    Example:
      seqtool corpus list
      seqtool corpus list --json
    """
    from seqtool.commands.corpus import list_corpora
    from seqtool.console import print_json, stdout_console

    rows = list_corpora()
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "task", "files", "size", "license", "present", box=None)
    for r in rows:
        table.add_row(r["name"], r["task"], str(r["files"]), f"{r['bytes'] / 1e6:.1f} MB",
                      r["license"], "[green]yes[/]" if r["present"] else "no")
    stdout_console().print(table)


@corpus.command("info", context_settings=CONTEXT)
@click.argument("name")
@json_option
def corpus_info_cmd(name: str, as_json: bool) -> None:
    """Show a corpus's catalog entry: splits, license, citation, sources.

    \b
    Example:
      seqtool corpus info multi30k
    """
    from rich.markup import escape

    from seqtool.commands.corpus import corpus_info
    from seqtool.console import print_json, stdout_console

    d = corpus_info(name)
    if as_json:
        print_json(d)
        return
    con = stdout_console()
    con.print(f"[bold]{escape(d['name'])}[/] ({d['task']}): {escape(d['description'])}")
    fields = [("format", d["format"]), ("languages", ", ".join(d["languages"])),
              ("splits", ", ".join(f"{k}={v}" for k, v in d["splits"].items())),
              ("files", f"{d['files']} ({d['bytes'] / 1e6:.1f} MB)"),
              ("license", d["license_full"]), ("citation", d["citation"]),
              ("homepage", d["homepage"]),
              ("hugging face", " ".join(x for x in (d["hf_dataset"], d["hf_config"]) if x)),
              ("download", d["download_base"]),
              ("store", d["store"] + ("" if d["present"] else "  (not imported)"))]
    for key, value in fields:
        if value:
            con.print(f"  [dim]{key:>12}[/]  {escape(str(value))}")


@corpus.command("import", context_settings=CONTEXT)
@click.argument("name")
@click.option("--from", "source", required=True, type=click.Path(path_type=Path),
              help="Folder holding the corpus's files (as listed by seqtool corpus info).")
@json_option
def corpus_import(name: str, source: Path, as_json: bool) -> None:
    """Copy a corpus from a local folder into the store, verifying every sha256.

    \b
    Example:
      seqtool corpus import wikitext-2 --from ../shared/corpora/wikitext-2
    """
    from seqtool.commands.corpus import import_from
    from seqtool.console import print_json, stdout_console

    bar, update = _byte_progress("import")
    with bar:
        result = import_from(name, source, update)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(f"imported {result['name']}: {result['files']} files, "
                               f"{result['bytes'] / 1e6:.1f} MB verified, in {result['path']}")


@corpus.command("fetch", context_settings=CONTEXT)
@click.argument("name")
@json_option
def corpus_fetch(name: str, as_json: bool) -> None:
    """Download a corpus from its catalogued address (needs the network).

    \b
    Example:
      seqtool corpus fetch ptb
    """
    from seqtool.commands.corpus import fetch
    from seqtool.console import print_json, stdout_console

    bar, update = _byte_progress("fetch")
    with bar:
        result = fetch(name, update)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(f"fetched {result['name']}: {result['files']} files, "
                               f"{result['bytes'] / 1e6:.1f} MB verified, in {result['path']}")


@cli.group(context_settings=CONTEXT)
def tokenizer() -> None:
    """Train a tokenizer (word, sentencepiece unigram or BPE) or inspect one.

    \b
    Example:
      seqtool tokenizer train --file my.txt --kind unigram --vocab-size 2000 --out tok/mine
      seqtool tokenizer encode tok/mine "the meaning of life"
    """


@tokenizer.command("train", context_settings=CONTEXT)
@click.option("--corpus", help="Imported corpus name (seqtool corpus list).")
@click.option("--file", "file", type=click.Path(path_type=Path), help="Any UTF-8 text file.")
@click.option("--split", help="Split of --corpus (default: train, or its only split).")
@click.option("--lang", help="Language of a parallel corpus (default: all, one joint vocabulary).")
@config_option("--kind", TokenizerConfig, "kind", "Word level or a sentencepiece model.",
               required=True)
@click.option("--vocab-size", type=int, default=None,
              help="Sentencepiece size (default 8000); for word, a cap (default none).")
@click.option("--min-freq", default=1, show_default=True, help="Word kind: drop rarer words.")
@click.option("--lowercase", is_flag=True, help="Lower-case text before tokenizing.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@json_option
def tokenizer_train(corpus: str | None, file: Path | None, split: str | None, lang: str | None,
                    kind: str, vocab_size: int | None, min_freq: int, lowercase: bool,
                    out: Path, as_json: bool) -> None:
    """Train a tokenizer and write it to OUT (tokenizer.json, plus spm.model).

    \b
    Example:
      seqtool tokenizer train --corpus wikitext-2 --kind word --out tok/wt2
      seqtool tokenizer train --corpus multi30k --kind bpe --vocab-size 8000 --out tok/m30k
      seqtool tokenizer train --file my.txt --kind unigram --vocab-size 2000 --out tok/mine
    """
    from seqtool.commands.tokenizer import train as train_tok
    from seqtool.console import print_json, stdout_console

    result = train_tok(out, kind, corpus, file, split, lang, vocab_size, min_freq, lowercase)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(
            f"{result['kind']} tokenizer, {result['vocab_size']:,} entries, trained on "
            f"{result['lines']:,} lines of {result['source']} in {result['seconds']:.1f} s; "
            f"wrote {', '.join(result['files'])} to {result['out']}")


@tokenizer.command("encode", context_settings=CONTEXT)
@click.argument("folder", type=click.Path(path_type=Path))
@click.argument("text")
@json_option
def tokenizer_encode(folder: Path, text: str, as_json: bool) -> None:
    """Show how the tokenizer in FOLDER splits TEXT: pieces and ids.

    \b
    Example:
      seqtool tokenizer encode tok/wt2 "the meaning of life"
    """
    from rich.markup import escape

    from seqtool.commands.tokenizer import encode
    from seqtool.console import print_json, stdout_console, warn

    result = encode(folder, text)
    if as_json:
        print_json(result)
        return
    if result["unknown"]:
        warn("not in the vocabulary (read as <unk>): " + ", ".join(result["unknown"]))
    stdout_console().print(" ".join(f"{escape(p)}[dim]:{i}[/]"
                                    for p, i in zip(result["pieces"], result["ids"], strict=False)))
    stdout_console().print(f"[dim]{len(result['ids'])} tokens ({result['kind']}, vocabulary "
                           f"{result['vocab_size']:,})[/]")
