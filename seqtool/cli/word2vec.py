"""word2vec commands: train word2vec, similar, analogy, export-vectors, evaluate word2vec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from seqtool.cli.app import (CONTEXT, cli, evaluate, interrupt_on_signals, json_option,
                             out_option, set_option, train)
from seqtool.models.registry import archs

vectors_options = [
    click.option("--model", "model_path", type=click.Path(path_type=Path),
                 help="word2vec checkpoint folder (seqtool train word2vec --out)."),
    click.option("--vectors", "vectors_path", type=click.Path(path_type=Path),
                 help="Or a word2vec text file (seqtool export-vectors, gensim)."),
]


def with_vectors(f: Any) -> Any:
    """--model CKPT / --vectors FILE."""
    for opt in reversed(vectors_options):
        f = opt(f)
    return f


def _positive(value: int, flag: str) -> None:
    if value < 1:
        raise click.BadParameter("must be at least 1", param_hint=flag) from None


@train.command("word2vec", context_settings=CONTEXT)
@click.option("--corpus", help="Catalog name of an imported corpus (seqtool corpus list).")
@click.option("--train-file", type=click.Path(path_type=Path), help="Plain text file instead.")
@click.option("--arch", type=click.Choice(archs("word2vec")), default=archs("word2vec")[0],
              show_default=True, help="Skip-gram or continuous bag of words.")
@click.option("--dim", type=int, default=100, show_default=True, help="Vector size.")
@click.option("--window", type=int, default=5, show_default=True,
              help="Largest context window (each word draws its own from 1..window).")
@click.option("--negative", type=int, default=5, show_default=True,
              help="Negative samples per predicted word.")
@click.option("--min-count", type=int, default=5, show_default=True,
              help="Ignore words seen fewer times.")
@click.option("--sample", type=float, default=1e-3, show_default=True,
              help="Subsampling threshold for frequent words (0 = off).")
@click.option("--epochs", type=int, default=5, show_default=True, help="Passes over the text.")
@click.option("--alpha", type=float, default=None,
              help="Starting learning rate [default: 0.025 skip-gram, 0.05 CBOW].")
@click.option("--engine", type=click.Choice(["auto", "numba", "torch"]), default="auto",
              show_default=True,
              help="Training loop: numba (compiled, as gensim; pip install 'seqtool[fast]') "
                   "or torch (batched updates). auto: CBOW on numba where installed (else "
                   "torch), skip-gram on torch (higher scores; numba is faster).")
@set_option("tokenizer.lowercase=true")
@out_option("word2vec", "Checkpoint folder")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="Worker threads, lock-free as in word2vec (0 = one per core, at most 8; "
                   "1 = reproducible).")
@json_option
def train_word2vec_cmd(corpus: str | None, train_file: Path | None, arch: str, dim: int,
                       window: int, negative: int, min_count: int, sample: float, epochs: int,
                       alpha: float | None, engine: str, overrides: tuple[str, ...],
                       out: Path | None,
                       threads: int, as_json: bool) -> None:
    """Train word vectors: skip-gram or CBOW with negative sampling (word2vec).

    Frequent words are subsampled, noise words drawn from the unigram^0.75
    distribution, and the learning rate decays linearly, as in word2vec and gensim.
    The numba engine (the `fast` extra) trains one word at a time like gensim's
    Cython and is the faster one; torch's batched updates run without it.
    The checkpoint folder works with `seqtool similar/analogy --model` and
    `seqtool export-vectors`.

    \b
    Example:
      seqtool train word2vec --corpus wikitext-2 --arch skipgram --out runs/w2v
      seqtool train word2vec --train-file text.txt --arch cbow --dim 50 --min-count 2
    """
    from seqtool.commands.word2vec import train_word2vec
    from seqtool.configfile import load_config
    from seqtool.console.word2vec import Word2VecReporter
    from seqtool.console import print_json, stdout_console

    model = {"arch": arch, "dim": dim, "window": window, "negative": negative,
             "sample": sample, "alpha": alpha, "engine": engine}
    data = {"corpus": corpus, "train_file": str(train_file) if train_file else None}
    cfg = load_config("word2vec", None, overrides,
                      {"data": data, "model": model, "tokenizer": {"min_freq": min_count},
                       "train": {"epochs": epochs}})
    interrupt_on_signals()
    summary = train_word2vec(cfg, out, Word2VecReporter(), threads)
    if as_json:
        print_json(summary)
    else:
        stdout_console().print(
            f"done: {summary['vocab_size']:,} word vectors ({summary['arch']}, "
            f"{summary['dim']} dimensions) from {summary['corpus_words']:,} words x "
            f"{summary['epochs']} epochs at {summary['words_per_s']:,.0f} words/s "
            f"({summary['engine']} engine); "
            f"checkpoint in {summary['run_dir']}")


@cli.command(context_settings=CONTEXT)
@click.argument("word")
@click.option("--top-k", default=10, show_default=True, help="How many neighbours to list.")
@with_vectors
@json_option
def similar(word: str, top_k: int, model_path: Path | None, vectors_path: Path | None,
            as_json: bool) -> None:
    """The words closest to WORD by cosine similarity.

    \b
    Example:
      seqtool similar king --model runs/w2v
      seqtool similar paris --vectors vectors.txt --top-k 20 --json
    """
    from seqtool.commands.word2vec import similar as find_similar
    from seqtool.console import print_json
    from seqtool.console.word2vec import render_neighbours

    _positive(top_k, "--top-k")
    result = find_similar(word, top_k, model_path, vectors_path)
    if as_json:
        print_json(result)
    else:
        render_neighbours(result)


@cli.command(context_settings=CONTEXT)
@click.argument("a")
@click.argument("b")
@click.argument("c")
@click.option("--top-k", default=5, show_default=True, help="How many answers to list.")
@with_vectors
@json_option
def analogy(a: str, b: str, c: str, top_k: int, model_path: Path | None,
            vectors_path: Path | None, as_json: bool) -> None:
    """Solve A - B + C: "king man woman" asks what is to woman as king is to man.

    \b
    Example:
      seqtool analogy king man woman --model runs/w2v
      seqtool analogy paris france germany --vectors vectors.txt
    """
    from seqtool.commands.word2vec import analogy as solve
    from seqtool.console import print_json
    from seqtool.console.word2vec import render_neighbours

    _positive(top_k, "--top-k")
    result = solve(a, b, c, top_k, model_path, vectors_path)
    if as_json:
        print_json(result)
    else:
        render_neighbours(result)


@cli.command("export-vectors", context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@json_option
def export_vectors_cmd(checkpoint: Path, out: Path, as_json: bool) -> None:
    """Write a word2vec checkpoint's vectors in the word2vec text format.

    The file ("VOCAB DIM" header, then "word v1 ... vDIM" per line, most frequent
    first) loads in gensim (KeyedVectors.load_word2vec_format) and other tools, and
    in seqtool: --vectors, and --init-embeddings for train lm / train translate.

    \b
    Example:
      seqtool export-vectors runs/w2v vectors.txt
    """
    from seqtool.commands.word2vec import export_vectors
    from seqtool.console import print_json, stdout_console

    result = export_vectors(checkpoint, out)
    if as_json:
        print_json(result)
    else:
        stdout_console().print(f"wrote {result['words']:,} vectors of {result['dim']} "
                               f"dimensions to {result['path']}")


@evaluate.command("word2vec", context_settings=CONTEXT)
@with_vectors
@click.option("--wordsim", type=click.Path(path_type=Path),
              help="Word pairs with human scores (default: gensim's wordsim353.tsv).")
@click.option("--analogies", type=click.Path(path_type=Path),
              help="Analogy questions (default: gensim's questions-words.txt).")
@click.option("--restrict-vocab", default=30000, show_default=True,
              help="Analogies: only the most frequent N words count (0 = all).")
@json_option
def evaluate_word2vec_cmd(model_path: Path | None, vectors_path: Path | None,
                          wordsim: Path | None, analogies: Path | None, restrict_vocab: int,
                          as_json: bool) -> None:
    """WordSim-353 Spearman correlation and Google analogy accuracy.

    Case-insensitive and skipping pairs and questions with unknown words, as
    gensim's evaluate_word_pairs and evaluate_word_analogies. The benchmark files
    come from gensim's test data when gensim is installed.

    \b
    Example:
      seqtool evaluate word2vec --model runs/w2v
      seqtool evaluate word2vec --vectors v.txt --wordsim ws353.tsv --analogies q.txt
    """
    from seqtool.commands.word2vec import evaluate_word2vec
    from seqtool.console import print_json
    from seqtool.console.word2vec import render_word2vec_eval

    if restrict_vocab < 0:
        raise click.BadParameter("must be >= 0", param_hint="--restrict-vocab") from None
    result = evaluate_word2vec(model_path, vectors_path, wordsim, analogies, restrict_vocab)
    if as_json:
        print_json(result)
    else:
        render_word2vec_eval(result)
