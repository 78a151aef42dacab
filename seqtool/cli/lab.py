"""The RNN lab: lab binary-addition, lab cells."""

from __future__ import annotations

from pathlib import Path

import click

from seqtool.cli.app import (cli, CONTEXT, json_option)
from seqtool.errors import ConfigError


@cli.group(context_settings=CONTEXT)
def lab() -> None:
    """The course's experiments: an RNN in NumPy that learns binary addition; cells
    compared; how far back the gradient reaches in each cell.

    \b
    Example:
      seqtool lab binary-addition --compare --plot losses.png
      seqtool lab cells --hidden 200 --seconds 60
      seqtool lab gradients --plot gradients.png
    """


@lab.command("binary-addition", context_settings=CONTEXT)
@click.option("--activation", default="sigmoid", show_default=True,
              type=click.Choice(["sigmoid", "tanh", "relu"]), help="Hidden nonlinearity.")
@click.option("--init", default="normal", show_default=True,
              type=click.Choice(["normal", "xavier", "he"]),
              help="Weights from N(0,1), N(0,1/fan_in) or N(0,2/fan_in).")
@click.option("--lr", default=0.1, show_default=True,
              help="Learning rate (plain gradient descent).")
@click.option("--hidden", default=16, show_default=True, help="Hidden units.")
@click.option("--steps", default=10_000, show_default=True,
              help="Training steps, one addition each.")
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
    from seqtool.console import note, print_json
    from seqtool.console.lab import render_addition

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
    from seqtool.console import note, print_json
    from seqtool.console.lab import render_cells

    result = cells(hidden=hidden, layers=layers, batch_size=batch_size, bptt=bptt,
                   seconds=seconds, corpus_dir=corpus_dir, vocab=vocab,
                   valid_tokens=valid_tokens, seed=seed,
                   on_cell=lambda what: note(f"{what} ..."))
    if as_json:
        print_json(result)
    else:
        render_cells(result)


@lab.command("gradients", context_settings=CONTEXT)
@click.option("--hidden", default=32, show_default=True, help="Hidden size of every cell.")
@click.option("--steps", default=100, show_default=True,
              help="T: sequence length; the loss is at the last step.")
@click.option("--train-steps", default=200, show_default=True,
              help="Short training on the task before measuring again (0 = skip).")
@click.option("--forget-bias", default=1.0, show_default=True,
              help="The LSTM forget gate's bias b: the gate starts near sigmoid(b) "
                   "(1: 0.73, 3: 0.95).")
@click.option("--batch-size", default=32, show_default=True, help="Sequences per batch.")
@click.option("--cell", "cells", multiple=True,
              type=click.Choice(["rnn_tanh", "rnn_relu", "lstm", "gru"]),
              help="Only these cells (repeatable; default: all four).")
@click.option("--seed", default=0, show_default=True, help="Seed of the weights and data.")
@click.option("--plot", type=click.Path(path_type=Path),
              help="Write the norms against the distance as a PNG (needs matplotlib).")
@json_option
def lab_gradients(hidden: int, steps: int, train_steps: int, forget_bias: float,
                  batch_size: int, cells: tuple[str, ...], seed: int, plot: Path | None,
                  as_json: bool) -> None:
    """How much of a loss's gradient reaches the hidden state k steps back.

    A tanh RNN, a ReLU RNN, an LSTM and a GRU of the same size read T one-hot
    symbols; a cross-entropy loss at the last step asks for the first symbol.
    The table gives ||dL/dh_(T-k)|| relative to ||dL/dh_T|| for k up to T, and
    the fitted factor per step back (a straight line on a log scale, R² near 1,
    is geometric decay), at initialisation and after a short training run.

    \b
    Why: in a simple RNN dL/dh_(T-k) = dL/dh_T x prod diag(f'(a_s)) U over
    the k steps. The sigmoid's derivative is at most 0.25 and tanh's at most
    1, so the product shrinks geometrically unless U's gain makes up for it
    (vanishing gradient); ReLU passes U's gain on and explodes above 1. The
    LSTM's cell state c_t = f_t * c_(t-1) + i_t * g_t has dc_t/dc_(t-1) = f_t:
    the constant error carousel (CEC). With the forget gate near 1 (--forget-bias
    3: f ~ 0.95) the error goes back almost unchanged; the GRU's update gate
    gives it a similar path.

    \b
    Example:
      seqtool lab gradients --plot gradients.png
      seqtool lab gradients --forget-bias 3 --train-steps 0 --json
      seqtool lab gradients --cell rnn_tanh --cell lstm --steps 50
    """
    from seqtool.commands.lab import gradients
    from seqtool.console import note, print_json
    from seqtool.console.lab import render_gradients

    result = gradients(hidden=hidden, steps=steps, train_steps=train_steps,
                       forget_bias=forget_bias, batch_size=batch_size, seed=seed,
                       cells=cells or None, plot=plot, on_cell=lambda c: note(f"{c} ..."))
    if as_json:
        print_json(result)
    else:
        render_gradients(result)
