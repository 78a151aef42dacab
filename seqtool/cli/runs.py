"""Run folders: plot (training curves as a PNG), average (checkpoint averaging)."""

from __future__ import annotations

from pathlib import Path

import click

from seqtool.cli.app import CONTEXT, cli, json_option
from seqtool.errors import InputError


@cli.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="The PNG to write (needs the plotting extra: pip install 'seqtool[plot]').")
@click.option("--x", "x", type=click.Choice(("steps", "tokens")), default="steps",
              show_default=True, help="The x axis: training steps or tokens seen.")
@json_option
def plot(runs: tuple[Path, ...], out: Path, x: str, as_json: bool) -> None:
    """Draw the training curves of one or several runs side by side into one PNG.

    Loss and perplexity (training, per train.log_every steps, and validation), the
    validation BLEU of translation runs, and the learning rate, from each run's
    metrics.jsonl and train.jsonl. A translation run's training loss includes label
    smoothing; its validation loss does not.

    \b
    Example:
      seqtool plot runs/m30k --out curves.png
      seqtool plot runs/gru runs/lstm --x tokens --out gru-vs-lstm.png
    """
    from seqtool.commands.curves import plot_runs
    from seqtool.console import print_json
    from seqtool.console.runs import render_plot

    result = plot_runs(list(runs), out, x)
    if as_json:
        print_json(result)
    else:
        render_plot(result)


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for the averaged checkpoint.")
@click.option("--last", type=click.IntRange(min=2),
              help="Average the newest N ckpt-<step>/ folders of the one RUN given "
                   "(kept by train.keep_last).")
@json_option
def average(checkpoints: tuple[Path, ...], out: Path, last: int | None, as_json: bool) -> None:
    """Write one checkpoint whose weights are the mean of several checkpoints' weights.

    The checkpoints must come from the same architecture and tokenizer (a difference
    is named); the config and tokenizer are the last one's. Keep a run's last N
    evaluations with --set train.keep_last=N, then average them.

    \b
    Example:
      seqtool average runs/m30k --last 5 --out runs/m30k-avg5
      seqtool average runs/m30k/ckpt-4000 runs/m30k/ckpt-4500 --out runs/m30k-avg2
      seqtool evaluate translate --model runs/m30k-avg5 --split test_2016_flickr
    """
    from seqtool.commands.average import average_checkpoints, last_checkpoints
    from seqtool.console import print_json
    from seqtool.console.runs import render_average
    from seqtool.runs import this_command

    folders = list(checkpoints)
    if last is not None:
        if len(folders) != 1:
            raise InputError(f"--last {last} takes one run folder, got {len(folders)} paths",
                             "give the run folder alone: seqtool average RUN --last N --out DIR")
        folders = last_checkpoints(folders[0], last)
    result = average_checkpoints(folders, out, this_command())
    if as_json:
        print_json(result)
    else:
        render_average(result)
