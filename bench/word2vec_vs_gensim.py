"""seqtool's word2vec side by side with gensim's Word2Vec (optimized C) on one corpus.

Target (from the issue): equal or better WordSim-353 Spearman and Google analogy
accuracy than gensim on the same corpus and settings; training speed reported as
words/s and as a ratio to gensim's.

Both train on exactly the same sentences: the lines of --corpus-file (default
WikiText-2 train) split on whitespace, with WikiText's literal `<unk>` tokens removed
(seqtool's tokenizer treats `<unk>` as its unknown-word token and never trains it).
Same settings for both: architecture, dimension, window, negative samples,
min-count, subsampling threshold, epochs, starting learning rate (word2vec's
defaults: 0.025 skip-gram, 0.05 CBOW, decaying linearly to 1e-4), and threads
(gensim `workers`, seqtool worker threads).

Both use lock-free threads (Hogwild), so runs vary even for one seed: each system
trains once per --seeds value (default 3), the two alternating so that a change in
machine load hits both alike.

- Speed: words/s = epochs x corpus words / training seconds (vocabulary building and
  tokenization excluded for both); the table gives the median over seeds and the
  median of the per-seed ratios seqtool / gensim.
- Quality: both models' vectors are scored by the same evaluation code
  (seqtool.data.vectors, which reproduces gensim's evaluate_word_pairs /
  evaluate_word_analogies: case-insensitive, unknown words skipped; analogies over
  the --restrict-vocab most frequent words, 3CosAdd); mean ± sd over seeds. For the
  first seed gensim's own evaluation of its model is stored too (`gensim_eval`), as
  a check that the two agree. Files: wordsim353.tsv and questions-words.txt from
  gensim's test data.

    .venv/bin/python bench/word2vec_vs_gensim.py [--quick] [--archs skipgram cbow]
        [--seeds 1 2 3] [--epochs 5] [--threads 2] [--max-words 0] [--corpus-file PATH]
        [--engine auto|numba|torch]

seqtool's engine (--engine, model.engine): numba (models/word2vec_numba.py, the `fast`
extra) or torch (batched updates); auto = numba where installed. The numba kernel is
compiled (or loaded from numba's cache) before the clock starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result


def default_corpus() -> Path:
    corpora = os.environ.get("SEQTOOL_CORPORA")
    root = Path(corpora) if corpora else Path(__file__).resolve().parents[2] / "shared" / "corpora"
    return root / "wikitext-2" / "train.txt"


def shown_path(path: Path) -> str:
    """The corpus path as results show it: relative to the repository (../shared/...),
    never this machine's absolute path."""
    return os.path.relpath(os.path.abspath(path), Path(__file__).resolve().parents[1])


def read_sentences(path: Path, max_words: int) -> list[str]:
    lines, words = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        tokens = [t for t in line.split() if t != "<unk>"]
        if tokens:
            lines.append(" ".join(tokens))
            words += len(tokens)
        if max_words and words >= max_words:
            break
    return lines


def scores(vecs: Any, restrict: int) -> dict[str, Any]:
    from seqtool.commands.word2vec import benchmark_file
    from seqtool.metrics import analogy_accuracy, word_pair_correlation

    ws = word_pair_correlation(vecs, benchmark_file("wordsim", None))
    an = analogy_accuracy(vecs, benchmark_file("analogies", None), restrict)
    return {"wordsim_spearman": ws["spearman"], "wordsim_pairs": ws["pairs"],
            "analogy_accuracy": an["accuracy"], "analogy_semantic": an["semantic"],
            "analogy_syntactic": an["syntactic"], "analogy_answered": an["answered"]}


def run_gensim(lines: list[str], arch: str, seed: int, a: argparse.Namespace,
               own_eval: bool) -> dict[str, Any]:
    from gensim.models import Word2Vec

    from seqtool.commands.word2vec import benchmark_file
    from seqtool.data.vectors import WordVectors
    from seqtool.models.word2vec import DEFAULT_ALPHA

    sentences = [line.split() for line in lines]
    words = sum(len(s) for s in sentences)
    model = Word2Vec(vector_size=a.dim, window=a.window, negative=a.negative, hs=0,
                     min_count=a.min_count, sample=a.sample, sg=int(arch == "skipgram"),
                     alpha=DEFAULT_ALPHA[arch], min_alpha=1e-4, workers=a.threads,
                     epochs=a.epochs, seed=seed)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=a.epochs)
    seconds = time.perf_counter() - start
    kv = model.wv
    result = {"system": "gensim", "arch": arch, "seed": seed, "vocab": len(kv),
              "seconds": seconds, "words_per_s": a.epochs * words / seconds,
              **scores(WordVectors(list(kv.index_to_key), kv.vectors), a.restrict_vocab)}
    if own_eval:  # gensim scoring its own model: the two evaluations must agree
        own_ws = kv.evaluate_word_pairs(str(benchmark_file("wordsim", None)))
        own_acc, _ = kv.evaluate_word_analogies(str(benchmark_file("analogies", None)),
                                                restrict_vocab=a.restrict_vocab)
        result["gensim_eval"] = {"wordsim_spearman": float(own_ws[1].statistic),
                                 "analogy_accuracy": float(own_acc)}
    return result


def run_seqtool(lines: list[str], arch: str, seed: int, a: argparse.Namespace,
                own_eval: bool) -> dict[str, Any]:
    from seqtool.commands.word2vec import fit
    from seqtool.config import Word2VecConfig
    from seqtool.data.tokenizer import WordTokenizer
    from seqtool.data.vectors import WordVectors
    from seqtool.data.word2vec import FIRST_WORD, encode_corpus
    from seqtool.models.word2vec import Word2Vec

    tok = WordTokenizer.train(lines, min_freq=a.min_count)
    corpus = encode_corpus(lines, tok)
    cfg = Word2VecConfig(arch=arch, dim=a.dim, window=a.window, negative=a.negative,
                         sample=a.sample, batch_words=a.batch_words, engine=a.engine)
    model = Word2Vec(cfg, tok.vocab_size)
    stats = fit(model, corpus, a.epochs, seed, workers=a.threads)
    vecs = WordVectors(tok.tokens[FIRST_WORD:], model.vectors()[FIRST_WORD:].numpy())
    return {"system": f"seqtool ({stats['engine']})", "arch": arch, "seed": seed,
            "vocab": len(vecs), "engine": stats["engine"],
            "seconds": stats["seconds"], "words_per_s": stats["words_per_s"],
            "final_loss": stats["loss"], **scores(vecs, a.restrict_vocab)}


def summarize(runs: list[dict[str, Any]], gensim_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of the scores over seeds; median words/s, and
    the median of the per-seed speed ratios (each seed's gensim run as reference)."""
    import statistics as st

    def mean_sd(key: str) -> tuple[float, float]:
        xs = [r[key] for r in runs]
        return st.mean(xs), (st.stdev(xs) if len(xs) > 1 else 0.0)

    ratios = [r["words_per_s"] / g["words_per_s"] for r, g in zip(runs, gensim_runs, strict=False)]
    return {"system": runs[0]["system"], "arch": runs[0]["arch"], "seeds": len(runs),
            "words_per_s": st.median(r["words_per_s"] for r in runs),
            "speed_ratio_vs_gensim": st.median(ratios),
            "seconds": st.median(r["seconds"] for r in runs), "vocab": runs[0]["vocab"],
            **{k: mean_sd(k) for k in ("wordsim_spearman", "analogy_accuracy",
                                       "analogy_semantic", "analogy_syntactic")}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus-file", type=Path, default=default_corpus())
    p.add_argument("--archs", nargs="+", default=["skipgram", "cbow"],
                   choices=["skipgram", "cbow"])
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="",
                   help="results file bench/results/OUT.json (default word2vec_vs_gensim)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                   help="one run per seed and system (both are Hogwild: runs vary)")
    p.add_argument("--batch-words", type=int, default=None,
                   help="seqtool's words per batched update (default: the config's)")
    p.add_argument("--engine", default="auto", choices=["auto", "numba", "torch"],
                   help="seqtool's training engine (model.engine; auto = numba if installed)")
    p.add_argument("--restrict-vocab", type=int, default=30000)
    p.add_argument("--max-words", type=int, default=0, help="use the first N words (0 = all)")
    p.add_argument("--quick", action="store_true",
                   help="200k words, 1 epoch, one seed: a smoke test")
    a = p.parse_args()
    if a.quick:
        a.max_words, a.epochs, a.seeds = a.max_words or 200_000, 1, a.seeds[:1]
    if a.batch_words is None:
        from seqtool.config import Word2VecConfig

        a.batch_words = Word2VecConfig().batch_words

    import torch

    from seqtool.runtime import keep_freed_memory

    # seqtool's word2vec sets glibc's malloc to keep freed memory (seqtool/runtime.py);
    # the setting is process-wide, so set it first: gensim runs under it too.
    keep_freed_memory()
    torch.set_num_threads(a.threads)
    lines = read_sentences(a.corpus_file, a.max_words)
    words = sum(len(line.split()) for line in lines)
    runs, summary = [], []
    for arch in a.archs:
        by_system: dict[str, list[dict[str, Any]]] = {"gensim": [], "seqtool": []}
        for i, seed in enumerate(a.seeds):  # alternate, so load changes hit both alike
            for name, runner in (("gensim", run_gensim), ("seqtool", run_seqtool)):
                r = runner(lines, arch, seed, a, own_eval=i == 0)
                print(f"{name} {arch} seed {seed}: {r['words_per_s']:,.0f} words/s, "
                      f"WordSim {r['wordsim_spearman']:.4f}, analogies "
                      f"{r['analogy_accuracy']:.4f}", file=sys.stderr, flush=True)
                by_system[name].append(r)
                runs.append(r)
        summary += [summarize(by_system[n], by_system["gensim"]) for n in ("gensim", "seqtool")]

    def pm(x: tuple[float, float], digits: int = 4) -> str:
        return f"{x[0]:.{digits}f} ± {x[1]:.{digits}f}"

    rows = [[f"{s['system']} {s['arch']}", fmt(s["words_per_s"], 0),
             f"{s['speed_ratio_vs_gensim']:.2f}", fmt(s["seconds"], 1),
             pm(s["wordsim_spearman"]), pm(s["analogy_accuracy"]),
             pm(s["analogy_semantic"]), pm(s["analogy_syntactic"]), fmt(s["vocab"])]
            for s in summary]
    table = markdown_table(["system", "words/s", "vs gensim", "train s", "WordSim-353 ρ",
                            "analogies", "semantic", "syntactic", "vocab"], rows)
    settings = {k: getattr(a, k) for k in ("dim", "window", "negative", "min_count", "sample",
                                           "epochs", "threads", "seeds", "batch_words", "engine",
                                           "restrict_vocab", "max_words")}
    settings.update(corpus=shown_path(a.corpus_file), corpus_words=words, lines=len(lines))
    print(f"\n{shown_path(a.corpus_file)} ({words:,} words, {len(lines):,} lines), "
          f"{a.epochs} epochs, "
          f"dim {a.dim}, window {a.window}, negative {a.negative}, min-count {a.min_count}, "
          f"sample {a.sample:g}, {a.threads} threads, seeds {a.seeds}; words/s: median "
          f"over seeds; scores: mean ± sd over seeds; analogies over the "
          f"{a.restrict_vocab:,} most frequent words\n")
    print(table)
    name = a.out or "word2vec_vs_gensim" + ("_quick" if a.quick else "")
    path = write_result(name, {"machine": machine_info(), "settings": settings,
                               "summary": summary, "runs": runs, "table": table})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
