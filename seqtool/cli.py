"""The `seqtool` command line (click). Heavy imports live inside command bodies
so that `seqtool --help` stays instant. Nothing imports this module."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from seqtool import __version__
from seqtool.errors import ConfigError, InputError, SeqtoolError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


device_option = click.option("--device", default="auto", show_default=True,
                             type=click.Choice(["auto", "cpu", "cuda"]),
                             help="Where to run; auto picks CUDA when present.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object instead of rich output.")
model_option = click.option("--model", "model_path", type=click.Path(path_type=Path),
                            help="Checkpoint or run folder (default: the shipped model).")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="seqtool")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Recurrent networks for next-word prediction, generation, translation and chat.

    \b
    Examples:
      seqtool predict "some of them looks like"
      seqtool generate "the meaning of life is" --max-tokens 20
      seqtool corpus import wikitext-2 --from ../shared/corpora/wikitext-2
      seqtool train lm --corpus wikitext-2 --config lm-wikitext2
    """
    if debug:
        os.environ["SEQTOOL_DEBUG"] = "1"


# --------------------------------------------------------------------------- train
@cli.group(context_settings=CONTEXT)
def train() -> None:
    """Train a model (language model: `seqtool train lm`).

    \b
    Example:
      seqtool train lm --train-file train.txt --valid-file valid.txt --config lm-tiny
    """


@train.command("lm", context_settings=CONTEXT)
@click.option("--corpus", help="Catalog name of an imported corpus (seqtool corpus list).")
@click.option("--train-file", type=click.Path(path_type=Path), help="Plain text training file.")
@click.option("--valid-file", type=click.Path(path_type=Path), help="Plain text validation file.")
@click.option("--config", "preset", help="Preset name (lm-wikitext2, lm-ptb, lm-tiny) or TOML file.")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(path_type=Path),
              help="Tokenizer folder from `seqtool tokenizer train` (default: train one).")
@click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE",
              help="Override one config key, e.g. --set train.lr=1e-3 (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder (default runs/lm-...).")
@click.option("--resume", type=click.Path(path_type=Path),
              help="Continue the run in this folder exactly where it stopped.")
@click.option("--threads", type=int, default=0, help="CPU threads (0 = torch's default).")
@device_option
@json_option
def train_lm_cmd(corpus: str | None, train_file: Path | None, valid_file: Path | None,
                 preset: str | None, tokenizer_dir: Path | None, overrides: tuple[str, ...],
                 out: Path | None,
                 resume: Path | None, threads: int, device: str, as_json: bool) -> None:
    """Train a recurrent language model with truncated BPTT.

    Writes RUN/best and RUN/last checkpoints and RUN/metrics.jsonl. Ctrl-C saves
    RUN/last; --resume RUN continues exactly.

    \b
    Example:
      seqtool train lm --corpus wikitext-2 --config lm-wikitext2 --out runs/wt2
      seqtool train lm --train-file a.txt --valid-file b.txt --set model.cell=gru
      seqtool train lm --resume runs/wt2 --set train.epochs=20
    """
    from seqtool.commands.train import resume_config, train_lm
    from seqtool.config import load_config
    from seqtool.console import RichReporter, print_json, stdout_console

    if resume is not None:
        if corpus or train_file or valid_file or preset or tokenizer_dir:
            raise ConfigError("--resume takes its data and config from the run",
                              "only --set overrides may be given with --resume")
        cfg = resume_config(resume, overrides)
    else:
        data = {"corpus": corpus, "train_file": str(train_file) if train_file else None,
                "valid_file": str(valid_file) if valid_file else None}
        tok = {"path": str(tokenizer_dir) if tokenizer_dir else None}
        cfg = load_config("lm", preset, overrides, {"data": data, "tokenizer": tok})
    _interrupt_on_signals()
    summary = train_lm(cfg, out, resume, RichReporter(), _device(device), threads)
    if as_json:
        print_json(summary)
    else:
        stdout_console().print(
            f"done ({summary['stop_reason']}): {summary['steps']} steps, best "
            f"{summary['metric']} {summary['best']:.2f}; checkpoints in {summary['run_dir']}")


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM (schedulers, `kill`) both save a resumable last/ checkpoint.

    SIGINT is re-armed too: a shell starts background jobs with it ignored."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


# --------------------------------------------------------------------------- use
@cli.command(context_settings=CONTEXT)
@click.argument("text")
@click.option("--top-k", default=10, show_default=True, help="How many candidates to list.")
@model_option
@device_option
@json_option
def predict(text: str, top_k: int, model_path: Path | None, device: str, as_json: bool) -> None:
    """Show the most probable next words after TEXT.

    \b
    Example:
      seqtool predict "some of them looks like" --top-k 20
      seqtool predict "the president of the" --json
    """
    from seqtool.commands.predict import predict_next
    from seqtool.console import print_json, render_prediction, warn

    if top_k < 1:
        raise click.BadParameter("must be at least 1", param_hint="--top-k") from None
    result = predict_next(text, top_k, model_path, _device(device))
    if result["unknown"]:
        warn("not in the vocabulary (read as <unk>): " + ", ".join(result["unknown"]))
    if as_json:
        print_json(result)
    else:
        render_prediction(result)


@cli.command(context_settings=CONTEXT)
@click.argument("text")
@click.option("--max-tokens", default=30, show_default=True, help="Tokens to generate.")
@click.option("--temperature", default=1.0, show_default=True, help="Sampling temperature > 0.")
@click.option("--top-k", default=0, show_default=True, help="Sample from the k best (0 = all).")
@click.option("--top-p", default=1.0, show_default=True, help="Nucleus sampling mass in (0, 1].")
@click.option("--greedy", is_flag=True, help="Always take the most probable token.")
@click.option("--seed", type=int, default=None, help="Random seed for reproducible samples.")
@click.option("--num", "num_samples", default=1, show_default=True, help="Independent samples.")
@model_option
@device_option
@json_option
def generate(text: str, max_tokens: int, temperature: float, top_k: int, top_p: float,
             greedy: bool, seed: int | None, num_samples: int, model_path: Path | None,
             device: str, as_json: bool) -> None:
    """Continue TEXT with the language model (greedy or sampled).

    \b
    Example:
      seqtool generate "the history of" --max-tokens 40 --temperature 0.8 --top-p 0.9
      seqtool generate "in the united states" --greedy
    """
    from seqtool.commands.predict import generate_text
    from seqtool.console import print_json, stdout_console, warn

    if temperature <= 0:
        raise click.BadParameter("must be > 0", param_hint="--temperature") from None
    if top_k < 0:
        raise click.BadParameter("must be >= 0", param_hint="--top-k") from None
    if not 0 < top_p <= 1:
        raise click.BadParameter("must be in (0, 1]", param_hint="--top-p") from None
    if max_tokens < 1 or num_samples < 1:
        raise click.BadParameter("must be at least 1", param_hint="--max-tokens/--num") from None
    result = generate_text(text, max_tokens, temperature, top_k, top_p, greedy, seed,
                           num_samples, model_path, _device(device))
    if result["unknown"]:
        warn("not in the vocabulary (read as <unk>): " + ", ".join(result["unknown"]))
    if as_json:
        print_json(result)
        return
    con = stdout_console()
    from rich.markup import escape
    for sample in result["samples"]:
        con.print(f"[bold]{escape(result['prompt'])}[/] {escape(sample)}")


# --------------------------------------------------------------------------- evaluate
@cli.group(context_settings=CONTEXT)
def evaluate() -> None:
    """Score a model on held-out data (language model: `seqtool evaluate lm`).

    \b
    Example:
      seqtool evaluate lm --model runs/wt2 --file test.txt
    """


@evaluate.command("lm", context_settings=CONTEXT)
@model_option
@click.option("--corpus", help="Imported corpus name (seqtool corpus list).")
@click.option("--split", default="test", show_default=True, help="Split of --corpus.")
@click.option("--file", "file", type=click.Path(path_type=Path), help="Any text file instead.")
@click.option("--batch-size", default=10, show_default=True, help="Parallel streams.")
@device_option
@json_option
def evaluate_lm_cmd(model_path: Path | None, corpus: str | None, split: str, file: Path | None,
                    batch_size: int, device: str, as_json: bool) -> None:
    """Word-level perplexity: exp(mean NLL per token), <eos> counted per line.

    \b
    Example:
      seqtool evaluate lm --corpus wikitext-2 --split test
      seqtool evaluate lm --model runs/ptb --file my.txt --json
    """
    from seqtool.commands.evaluate import evaluate_lm
    from seqtool.console import print_json, stdout_console

    result = evaluate_lm(model_path, corpus, split, file, batch_size, _device(device))
    if as_json:
        print_json(result)
    else:
        stdout_console().print(
            f"perplexity [bold]{result['perplexity']:.2f}[/] (loss {result['loss']:.4f}) on "
            f"{result['tokens']:,} tokens of {result['corpus']} {result['split']}"
            + (f"; per word {result['word_perplexity']:.2f}" if "word_perplexity" in result
               else ""))


# --------------------------------------------------------------------------- info / export
@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path), required=False)
@json_option
def info(checkpoint: Path | None, as_json: bool) -> None:
    """Show a checkpoint's model card and parameter counts per component.

    \b
    Example:
      seqtool info runs/wt2/best
      seqtool info --json        # the shipped default model
    """
    from seqtool.commands.info import checkpoint_info
    from seqtool.console import print_json, render_info

    result = checkpoint_info(checkpoint)
    if as_json:
        print_json(result)
    else:
        render_info(result)


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--half", is_flag=True, help="Store the weights in fp16 (half the size).")
def export(source: Path, dest: Path, half: bool) -> None:
    """Copy a checkpoint without training state (optionally fp16) for shipping.

    \b
    Example:
      seqtool export runs/wt2/best checkpoints/lm-wikitext2 --half
    """
    from seqtool.commands.info import export_checkpoint
    from seqtool.console import stdout_console

    size = export_checkpoint(source, dest, half)
    stdout_console().print(f"wrote {dest} ({size / 1e6:.1f} MB)")


# --------------------------------------------------------------------------- corpus
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


# --------------------------------------------------------------------------- tokenizer
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
@click.option("--kind", required=True, type=click.Choice(["word", "unigram", "bpe"]),
              help="Word level or a sentencepiece model.")
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
                                    for p, i in zip(result["pieces"], result["ids"])))
    stdout_console().print(f"[dim]{len(result['ids'])} tokens ({result['kind']}, vocabulary "
                           f"{result['vocab_size']:,})[/]")


# --------------------------------------------------------------------------- lab
@cli.group(context_settings=CONTEXT)
def lab() -> None:
    """The course's experiments: an RNN in NumPy that learns binary addition; cells compared.

    \b
    Example:
      seqtool lab binary-addition --compare --plot losses.png
      seqtool lab cells --hidden 200 --seconds 60
    """


@lab.command("binary-addition", context_settings=CONTEXT)
@click.option("--activation", default="sigmoid", show_default=True,
              type=click.Choice(["sigmoid", "tanh", "relu"]), help="Hidden nonlinearity.")
@click.option("--init", default="normal", show_default=True,
              type=click.Choice(["normal", "xavier", "he"]),
              help="Weights from N(0,1), N(0,1/fan_in) or N(0,2/fan_in).")
@click.option("--lr", default=0.1, show_default=True, help="Learning rate (plain gradient descent).")
@click.option("--hidden", default=16, show_default=True, help="Hidden units.")
@click.option("--steps", default=10_000, show_default=True, help="Training steps, one addition each.")
@click.option("--seed", default=0, show_default=True,
              help="Seeds the weights, the training pairs and the held-out pairs.")
@click.option("--clip", default=0.0, show_default=True,
              help="Rescale the gradient to at most this norm (0 = off).")
@click.option("--window", default=100, show_default=True,
              help="The loss curve averages the loss over windows of this many steps.")
@click.option("--compare", is_flag=True,
              help="Run the five variants: base, lr=0.01, xavier, relu, tanh.")
@click.option("--plot", type=click.Path(path_type=Path), help="Also write the curves to this PNG.")
@json_option
@click.pass_context
def lab_binary_addition(ctx: click.Context, activation: str, init: str, lr: float, hidden: int,
                        steps: int, seed: int, clip: float, window: int, compare: bool,
                        plot: Path | None, as_json: bool) -> None:
    """An RNN in plain NumPy learns 8-bit binary addition (BPTT written out).

    Each step it reads one bit of a and of b (least significant first) and
    outputs one bit of a+b; one random pair (a, b < 128) per training step;
    1,000 pairs are held out for the accuracy (all 8 bits right). The base
    model: sigmoid, lr 0.1, weights from N(0, 1), 16 hidden units. --compare
    changes one thing at a time: lr=0.01, xavier init, relu, tanh.

    \b
    Outcome of a run, from its curve (mean loss per --window steps), the same
    for every variant:
      diverged       a loss or gradient became NaN/inf, or the gradient norm
                     (before clipping) exceeded 1e6 at some step
      converged      the last point of the curve is below 0.1 (cross-entropy
                     summed over the 8 bits; chance is 5.5); steps to converge:
                     where the curve went below 0.1 for good
      oscillating    neither, and over the last 30% of the curve its standard
                     deviation is above 5% of its mean while a fitted line
                     falls by less than 10% of the mean
      not converged  otherwise

    \b
    Example:
      seqtool lab binary-addition --compare --plot losses.png
      seqtool lab binary-addition --activation relu --clip 1
      seqtool lab binary-addition --compare --json
    """
    from seqtool.commands.lab import binary_addition
    from seqtool.console import note, print_json, render_addition

    if compare:
        chosen = [f"--{p}" for p in ("activation", "init", "lr")
                  if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
        if chosen:
            raise ConfigError(f"--compare runs the five fixed variants; {', '.join(chosen)} "
                              "set a single run", "drop them, or drop --compare")
    result = binary_addition(activation=activation, init=init, lr=lr, hidden=hidden,
                             steps=steps, seed=seed, clip=clip, window=window, compare=compare,
                             plot=plot, on_variant=lambda name: note(f"training {name} ..."))
    if as_json:
        print_json(result)
    else:
        render_addition(result)


@lab.command("cells", context_settings=CONTEXT)
@click.option("--hidden", default=200, show_default=True, help="Hidden size = embedding size.")
@click.option("--layers", default=1, show_default=True, help="Stacked recurrent layers.")
@click.option("--batch-size", default=20, show_default=True, help="Streams per batch.")
@click.option("--bptt", default=35, show_default=True, help="Tokens per BPTT window.")
@click.option("--seconds", default=60.0, show_default=True,
              help="Training budget per cell for the perplexity (0 = skip that part).")
@click.option("--corpus-dir", type=click.Path(path_type=Path),
              help="Folder with ptb.train.txt and ptb.valid.txt (default: imported ptb).")
@click.option("--vocab", default=10_000, show_default=True,
              help="Vocabulary of the speed batch when there is no corpus (--seconds 0).")
@click.option("--valid-tokens", default=0, show_default=True,
              help="Evaluate on at most this many validation tokens (0 = all).")
@click.option("--seed", default=0, show_default=True, help="Seed of the weights and the batch.")
@json_option
def lab_cells(hidden: int, layers: int, batch_size: int, bptt: int, seconds: float,
              corpus_dir: Path | None, vocab: int, valid_tokens: int, seed: int,
              as_json: bool) -> None:
    """RNN, LSTM, LSTM with peepholes and GRU side by side at one size.

    Parameter counts, training tokens/s on the same language-model batch, and
    the validation perplexity each reaches on Penn Treebank after training
    for the same number of seconds (same data, Adam, clip 0.25).

    \b
    Example:
      seqtool lab cells --hidden 200 --seconds 60
      seqtool lab cells --corpus-dir ../shared/corpora/ptb --seconds 30 --json
      seqtool lab cells --hidden 650 --seconds 0      # parameters and speed only
    """
    from seqtool.commands.lab import cells
    from seqtool.console import note, print_json, render_cells

    result = cells(hidden=hidden, layers=layers, batch_size=batch_size, bptt=bptt,
                   seconds=seconds, corpus_dir=corpus_dir, vocab=vocab,
                   valid_tokens=valid_tokens, seed=seed,
                   on_cell=lambda what: note(f"{what} ..."))
    if as_json:
        print_json(result)
    else:
        render_cells(result)


def main() -> None:
    """Console entry point: one error path, exit code 2 for user errors."""
    debug = os.environ.get("SEQTOOL_DEBUG") == "1" or "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail(InputError("interrupted", "nothing was changed"), debug)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except click.ClickException as exc:  # bad flag or argument: same error + hint lines
        from seqtool.console import print_error

        ctx = getattr(exc, "ctx", None)
        print_error(exc.format_message(),
                    f"see: {ctx.command_path if ctx else 'seqtool'} --help")
        sys.exit(2 if exc.exit_code not in (0,) else 0)
    except SeqtoolError as exc:
        _fail(exc, debug)
    except KeyboardInterrupt:
        _fail(InputError("interrupted (Ctrl-C)", "nothing was saved by this command"), debug)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)


def _fail(exc: SeqtoolError, debug: bool) -> Any:
    from seqtool.console import print_error

    if debug:
        import traceback

        traceback.print_exc()
    print_error(exc.message, exc.hint)
    sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
