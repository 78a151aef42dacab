"""`seqtool train word2vec`, `similar`, `analogy`, `export-vectors`, `evaluate word2vec`
(`--init-embeddings` for `train lm` / `train translate`: models/pretrained.py).

A word2vec checkpoint is an ordinary seqtool checkpoint folder (kind "word2vec":
config.json, model.safetensors with both tables, the word tokenizer, MODEL_CARD.md);
its word vectors export to the word2vec text format (seqtool.data.vectors), which
gensim and most tools read. Queries take a checkpoint or such a text file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqtool.config import RunConfig
from seqtool.errors import ConfigError, DataError

if TYPE_CHECKING:
    from seqtool.data.vectors import WordVectors
    from seqtool.data.word2vec import Corpus

GENSIM_FILES = {"wordsim": "wordsim353.tsv", "analogies": "questions-words.txt"}


# --------------------------------------------------------------------------- training
def fit(model: Any, corpus: Corpus, epochs: int, seed: int, reporter: Any = None,
        workers: int = 1, report_every_s: float = 0.5) -> dict[str, Any]:
    """Train `model` (models/word2vec.py) on `corpus` for `epochs`; the learning rate
    decays linearly from model.alpha to min_alpha over all epochs' words.

    The engine is model.cfg.engine (models.word2vec.choose_engine): numba (the compiled
    kernel of models/word2vec_numba.py, one word at a time) or torch (batched updates).
    `workers` > 1 splits the corpus into that many spans, each trained by its own
    thread (one-thread tensor ops for torch), all updating the shared tables without
    locks (Hogwild, as word2vec and gensim do; the result then varies from run to run).
    One worker is deterministic for a seed. Reports on_step({words, total_words,
    epoch, lr, loss, words_per_s}) about every `report_every_s` seconds. Returns
    seconds, words/s, the last mean loss and the engine."""
    import math
    import threading

    import numpy as np
    import torch

    from seqtool.data.word2vec import keep_probabilities, noise_table
    from seqtool.models.word2vec import choose_engine
    from seqtool.runtime import keep_freed_memory

    engine = choose_engine(model.cfg.engine, model.cfg.arch)
    keep_freed_memory()  # each batch's buffers are reused, not page-faulted (~+20% here)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    keep = keep_probabilities(corpus.counts, model.cfg.sample)
    noise = noise_table(corpus.counts)
    total = max(1, epochs * corpus.raw_words)
    alpha, min_alpha = model.alpha, min(model.cfg.min_alpha, model.alpha)
    bounds = np.linspace(0, corpus.words, workers + 1).astype(np.int64)
    done = [0] * workers
    losses = [float("nan")] * workers
    stop, errors = threading.Event(), []

    def lr_now() -> float:
        return alpha - (alpha - min_alpha) * min(1.0, sum(done) / total)

    epoch_steps = _epoch_steps(engine, model, corpus, keep, noise, seed, lr_now)

    def work(w: int) -> None:
        try:
            _run_worker(epoch_steps(w, (int(bounds[w]), int(bounds[w + 1])), epochs), w,
                        stop, done, losses)
        except Exception as exc:  # re-raised in the calling thread
            errors.append(exc)
            stop.set()

    def mean_loss() -> float:
        seen = [x for x in losses if not math.isnan(x)]
        return sum(seen) / len(seen) if seen else float("nan")

    threads_before = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(1)
    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(workers)]
    start = time.perf_counter()

    def report() -> None:
        words = sum(done)
        if reporter is not None and words and not stop.is_set():
            reporter.on_step({"words": words, "total_words": total,
                              "epoch": min(epochs, 1 + words // max(corpus.raw_words, 1)),
                              "lr": lr_now(), "loss": mean_loss(),
                              "words_per_s": words / max(time.perf_counter() - start, 1e-9)})

    try:
        _run_reporting(threads, report, report_every_s)
    finally:
        stop.set()  # on Ctrl-C the workers stop after their current batch
        for t in threads:
            t.join()
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "words_per_s": total / max(seconds, 1e-9), "loss": mean_loss(),
            "words": total, "workers": workers, "engine": engine}


def _run_worker(epochs: Any, w: int, stop: Any, done: list[int], losses: list[float]) -> None:
    """Worker w's updates, epoch by epoch (each an iterator of (raw words, loss or
    None)), counting its words in done[w] and its last loss in losses[w], until the
    end or until `stop` is set."""
    for steps in epochs:
        for words, loss in steps:
            if stop.is_set():
                return
            losses[w] = losses[w] if loss is None else loss
            done[w] += words


def _epoch_steps(engine: str, model: Any, corpus: Corpus, keep: Any, noise: Any, seed: int,
                 lr_now: Any) -> Any:
    """steps(worker, span, epochs): per epoch, an iterator of (raw words done, loss or
    None) per update of that engine, over the worker's span of the corpus. The numba
    kernel is compiled (or loaded from numba's cache) here, before the clock starts."""
    import numpy as np
    import torch

    cfg = model.cfg
    if engine == "numba":
        from seqtool.models import word2vec_numba as kernel

        kernel.compile_kernel()
        syn0 = model.in_vectors.weight.detach().numpy()  # (V, D) views: updated in place
        syn1 = model.out_vectors.weight.detach().numpy()

        def numba_steps(w: int, span: tuple[int, int], epochs: int) -> Any:
            state = kernel.seed_state(seed, w)
            for _ in range(epochs):
                yield kernel.train_epoch(syn0, syn1, corpus, keep, noise, cfg, span, state,
                                         lr_now)

        return numba_steps

    from seqtool.data.word2vec import epoch_batches

    def torch_epoch(span: tuple[int, int], rng: Any) -> Any:
        for step, b in enumerate(epoch_batches(corpus, keep, noise, cfg.window, cfg.negative,
                                               cfg.batch_words, rng, span)):
            yield b.words, model.update(torch.from_numpy(b.contexts), torch.from_numpy(b.mask),
                                        torch.from_numpy(b.targets), lr_now(),
                                        with_loss=step % 50 == 0)

    def torch_steps(w: int, span: tuple[int, int], epochs: int) -> Any:
        rng = np.random.default_rng([seed, w])
        for _ in range(epochs):
            yield torch_epoch(span, rng)

    return torch_steps


def _run_reporting(threads: list[Any], report: Any, every_s: float) -> None:
    """Start the worker threads and call report() about every `every_s` seconds until
    all have ended."""
    for t in threads:
        t.start()
    while alive := [t for t in threads if t.is_alive()]:
        alive[0].join(every_s)
        report()


def word2vec_card(cfg: RunConfig, vocab: int, corpus_words: int, stats: dict[str, Any]
                  ) -> str:
    from seqtool.runs import this_command

    m, d = cfg.model, cfg.data
    cmd = this_command()
    model = (f"- model: {m.arch}, {m.dim} dimensions, window {m.window}, {m.negative} "
             f"negative samples (unigram^0.75), subsampling {m.sample:g}, "
             f"{cfg.train.epochs} epochs")
    data = (f"- data: {d.corpus or d.train_file} ({corpus_words:,} words); vocabulary "
            f"{vocab:,} words seen at least {cfg.tokenizer.min_freq} times")
    speed = (f"- {stats['words_per_s']:,.0f} words/s ({stats['engine']} engine, "
             f"{stats['workers']} threads), {stats['seconds']:.1f} s; final loss "
             f"{stats['loss']:.4f}")
    return "\n".join(["# seqtool word2vec model", "", model, data, "", "## Recipe", "",
                      "```", cmd, "```", "", "## Training", "", speed, ""])


def train_word2vec(cfg: RunConfig, out: Path | None = None, reporter: Any = None,
                   threads: int = 0) -> dict[str, Any]:
    """Word tokenizer (min-count = tokenizer.min_freq), then word2vec with `threads`
    worker threads (0 = one per CPU core, at most 8; see fit); saves a checkpoint folder
    at `out` (default runs/word2vec-...)."""
    import os

    from seqtool.checkpoint import save_checkpoint
    from seqtool.data.splits import text_split_path
    from seqtool.data.text import read_lines
    from seqtool.runs import default_run_dir
    from seqtool.data.tokenizer import WordTokenizer, load_tokenizer
    from seqtool.data.word2vec import FIRST_WORD, encode_corpus
    from seqtool.models import build_model
    from seqtool.models.word2vec import choose_engine

    workers = threads or min(8, os.cpu_count() or 1)
    tc = cfg.tokenizer
    if tc.kind != "word":
        raise ConfigError(f"word2vec needs a word-level tokenizer, not {tc.kind!r}",
                          "drop --set tokenizer.kind, or set it to word")
    if cfg.train.tensorboard or cfg.train.keep_last:
        raise ConfigError("train.tensorboard and train.keep_last are for runs that evaluate "
                          "(train lm, translate, chat); word2vec does not",
                          "drop those --set overrides")
    run_dir = Path(out) if out else default_run_dir(cfg)
    if (run_dir / "config.json").exists():
        raise ConfigError(f"{run_dir} already holds a checkpoint", "choose another --out")
    lines = read_lines(text_split_path(cfg.data, "train"), "train file")
    if tc.path:
        tokenizer = load_tokenizer(Path(tc.path))
        if tokenizer.kind != "word":
            raise ConfigError(f"word2vec needs a word-level tokenizer; {tc.path} is "
                              f"{tokenizer.kind}", "train one with --kind word")
    else:
        tokenizer = WordTokenizer.train(lines, tc.min_freq, tc.max_vocab, tc.lowercase)
    corpus = encode_corpus(lines, tokenizer)
    if tokenizer.vocab_size <= FIRST_WORD or corpus.words == 0:
        raise DataError(f"no word occurs {tc.min_freq} times or more in the training data",
                        "lower --min-count, or give more text")
    model = build_model("word2vec", cfg.model, tokenizer.vocab_size)
    engine = choose_engine(cfg.model.engine, cfg.model.arch)  # may raise: before the bar
    if reporter is not None:
        reporter.on_start({"total_words": cfg.train.epochs * corpus.raw_words,
                           "epochs": cfg.train.epochs, "vocab_size": tokenizer.vocab_size,
                           "engine": engine})
    try:
        stats = fit(model, corpus, cfg.train.epochs, cfg.train.seed, reporter, workers)
    finally:
        if reporter is not None:
            reporter.on_end({})
    vocab = tokenizer.vocab_size - FIRST_WORD
    metrics = {k: stats[k] for k in ("words_per_s", "seconds", "loss", "engine")}
    save_checkpoint(run_dir, model=model, config=cfg, tokenizer=tokenizer,
                    card=word2vec_card(cfg, vocab, corpus.raw_words, stats),
                    extra_meta={"metrics": metrics})
    return {"run_dir": str(run_dir), "vocab_size": vocab, "corpus_words": corpus.raw_words,
            "trained_words": corpus.words, "epochs": cfg.train.epochs,
            "arch": cfg.model.arch, "dim": cfg.model.dim, "threads": workers, **metrics}


# --------------------------------------------------------------------------- vectors
def checkpoint_vectors(model_path: Path) -> WordVectors:
    from seqtool.checkpoint import load_checkpoint
    from seqtool.data.vectors import WordVectors
    from seqtool.data.word2vec import FIRST_WORD

    loaded = load_checkpoint(model_path, expect_kind="word2vec")
    tok = loaded.tokenizer
    words = [tok.id_to_token(i) for i in range(FIRST_WORD, tok.vocab_size)]
    return WordVectors(words, loaded.model.vectors()[FIRST_WORD:].numpy())


def load_vectors(model_path: Path | None, vectors_path: Path | None) -> WordVectors:
    """Vectors of a word2vec checkpoint (--model) or a word2vec text file (--vectors)."""
    from seqtool.data.vectors import read_word2vec

    if (model_path is None) == (vectors_path is None):
        raise ConfigError("give exactly one of --model CKPT or --vectors FILE",
                          "e.g. seqtool similar king --model runs/w2v")
    if model_path is not None:
        return checkpoint_vectors(model_path)
    assert vectors_path is not None
    return read_word2vec(vectors_path)


def export_vectors(model_path: Path, out: Path) -> dict[str, Any]:
    from seqtool.data.vectors import write_word2vec

    vecs = checkpoint_vectors(model_path)
    write_word2vec(out, vecs.words, vecs.matrix)
    return {"path": str(out), "words": len(vecs), "dim": vecs.dim}


def similar(word: str, top_k: int, model_path: Path | None = None,
            vectors_path: Path | None = None) -> dict[str, Any]:
    vecs = load_vectors(model_path, vectors_path)
    (found,) = vecs.resolve([word])
    return {"query": [found], "positive": [found], "negative": [],
            "resolved": _resolved([word], [found]),
            "neighbours": [{"word": w, "cosine": s}
                           for w, s in vecs.nearest([found], top_k=top_k)]}


def analogy(a: str, b: str, c: str, top_k: int, model_path: Path | None = None,
            vectors_path: Path | None = None) -> dict[str, Any]:
    """a - b + c (king man woman -> queen), 3CosAdd over unit vectors."""
    vecs = load_vectors(model_path, vectors_path)
    fa, fb, fc = vecs.resolve([a, b, c])
    return {"query": [fa, fb, fc], "positive": [fa, fc], "negative": [fb],
            "resolved": _resolved([a, b, c], [fa, fb, fc]),
            "neighbours": [{"word": w, "cosine": s}
                           for w, s in vecs.nearest([fa, fc], [fb], top_k=top_k)]}


def _resolved(typed: list[str], found: list[str]) -> dict[str, str]:
    """The query words found under another case: typed -> vocabulary spelling."""
    return {t: f for t, f in zip(typed, found, strict=False) if t != f}


# --------------------------------------------------------------------------- evaluation
def benchmark_file(which: str, given: Path | None) -> Path:
    """--wordsim / --analogies, else the copy in gensim's test data (never imported)."""
    import importlib.util

    if given is not None:
        if not Path(given).is_file():
            raise DataError(f"{which} file not found: {given}", "check the path")
        return Path(given)
    spec = importlib.util.find_spec("gensim")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "test" / "test_data" / GENSIM_FILES[which]
        if path.is_file():
            return path
    raise ConfigError(f"no {which} file: give --{which} FILE",
                      "or install gensim (pip install seqtool[bench]): its test data holds "
                      "wordsim353.tsv and questions-words.txt")


def evaluate_word2vec(model_path: Path | None, vectors_path: Path | None,
                      wordsim: Path | None = None, analogies: Path | None = None,
                      restrict: int = 30000) -> dict[str, Any]:
    """WordSim-353 Spearman and Google analogy accuracy, case-insensitive and restricted
    as gensim's evaluate_word_pairs / evaluate_word_analogies (seqtool.data.vectors)."""
    from seqtool.metrics import analogy_accuracy, word_pair_correlation

    ws_path, an_path = benchmark_file("wordsim", wordsim), benchmark_file("analogies", analogies)
    vecs = load_vectors(model_path, vectors_path)
    return {"vectors": str(model_path or vectors_path), "words": len(vecs), "dim": vecs.dim,
            "wordsim": {"file": str(ws_path), **word_pair_correlation(vecs, ws_path)},
            "analogies": {"file": str(an_path), "restrict_vocab": restrict,
                          **analogy_accuracy(vecs, an_path, restrict)}}
