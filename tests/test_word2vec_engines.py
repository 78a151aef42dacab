"""word2vec's two engines: the numba kernel (models/word2vec_numba.py) against a plain
NumPy transcription of word2vec's sequential update, both engines learning planted
co-occurrence structure, one thread being deterministic, the chunking at line ends,
and the engine choice (auto: CBOW on numba, skip-gram on torch, torch without numba;
asking for numba without it is one error line; the CLI, --json and the model card say
which ran)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import assert_user_error, run_cli
from test_word2vec import CONTEXTS, GROUPS, mean_cosine, planted_lines

from seqtool.config import Word2VecConfig
from seqtool.data.tokenizer import WordTokenizer
from seqtool.data.vectors import WordVectors
from seqtool.data.word2vec import FIRST_WORD, encode_corpus
from seqtool.errors import ConfigError
from seqtool.models import build_model
from seqtool.models import word2vec as w2v

needs_numba = pytest.mark.skipif(not w2v.numba_available(),
                                 reason="numba is not installed (pip install -e '.[fast]')")
ENGINES = [pytest.param("numba", marks=needs_numba), "torch"]


def train(lines: list[str], arch: str, engine: str, epochs: int = 10, seed: int = 1,
          workers: int = 1) -> tuple[WordVectors, dict]:
    from seqtool.commands.word2vec import fit

    tok = WordTokenizer.train(lines, min_freq=1)
    corpus = encode_corpus(lines, tok)
    cfg = Word2VecConfig(arch=arch, dim=16, window=3, negative=4, batch_words=64,
                         engine=engine)
    m = build_model("word2vec", cfg, tok.vocab_size)
    stats = fit(m, corpus, epochs, seed=seed, workers=workers)
    return WordVectors(tok.tokens[FIRST_WORD:], m.vectors()[FIRST_WORD:].numpy()), stats


# --------------------------------------------------------------------------- learning
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("arch", ["cbow", "skipgram"])
def test_words_sharing_contexts_become_similar(engine, arch):
    """Before training the two groups are alike; after, each word is nearer its own
    group (the words it shares contexts with) than the other."""
    lines = planted_lines()
    before, _ = train(lines, arch, engine, epochs=0)
    after, stats = train(lines, arch, engine, workers=2)
    assert stats["engine"] == engine and np.isfinite(stats["loss"])
    animals, tools = GROUPS["animal"], GROUPS["tool"]

    def gap(v: WordVectors) -> float:
        within = (mean_cosine(v, animals, animals) + mean_cosine(v, tools, tools)) / 2
        return within - mean_cosine(v, animals, tools)

    assert abs(gap(before)) < 0.1 and gap(after) > 0.3, (gap(before), gap(after))
    for w in tools:
        assert mean_cosine(after, [w], tools) > mean_cosine(after, [w], animals) + 0.1
    neighbours = [w for w, _ in after.nearest(["drill"], top_k=4)]
    assert set(neighbours) <= set(tools + CONTEXTS["tool"]), neighbours


@needs_numba
@pytest.mark.parametrize("arch", ["cbow", "skipgram"])
def test_numba_one_thread_is_deterministic(arch):
    lines = planted_lines(300)
    a, _ = train(lines, arch, "numba", epochs=2)
    b, _ = train(lines, arch, "numba", epochs=2)
    c, _ = train(lines, arch, "numba", epochs=2, seed=2)
    assert np.array_equal(a.matrix, b.matrix)
    assert not np.allclose(a.matrix, c.matrix)


# --------------------------------------------------------------------------- the kernel
def reference_update(syn0, syn1, words, window, targets, lr, skipgram):
    """word2vec's loop in NumPy, for one line with every word kept, a reach equal to the
    window and fixed noise words: each word's update sees the ones before it."""
    for i, word in enumerate(words):
        ctx = [words[j] for j in range(max(0, i - window), min(len(words), i + window + 1))
               if j != i]
        tgt = [word, *[t for t in targets if t != word]]
        labels = [1.0] + [0.0] * (len(tgt) - 1)
        inputs = [[c] for c in ctx] if skipgram else [ctx]
        for group in inputs:
            h = syn0[group].mean(0)
            err = np.zeros_like(h)
            for t, label in zip(tgt, labels, strict=True):
                g = (label - 1 / (1 + np.exp(-(h @ syn1[t])))) * lr
                err += g * syn1[t]
                syn1[t] += g * h
            for c in group:
                syn0[c] += err


@needs_numba
@pytest.mark.parametrize("arch", ["cbow", "skipgram"])
def test_kernel_is_word2vecs_sequential_update(arch):
    """With window 1 (every reach is 1), nothing subsampled and a noise table that
    always draws word 7 (and so skips it where 7 is the word itself), the kernel's
    result is the sequential reference above, word for word."""
    from seqtool.models.word2vec_numba import seed_state, train_chunk

    rng = np.random.default_rng(0)
    syn0 = rng.normal(0, 0.5, (9, 4)).astype(np.float32)
    syn1 = rng.normal(0, 0.5, (9, 4)).astype(np.float32)
    words = [5, 4, 7, 6, 4, 8]
    want0, want1 = syn0.astype(np.float64), syn1.astype(np.float64)
    reference_update(want0, want1, words, 1, [7, 7], 0.1, arch == "skipgram")
    loss = np.zeros(2)
    kept = train_chunk(syn0, syn1, np.array(words, dtype=np.int32), np.zeros(6, np.int32),
                       np.ones(9), np.zeros(9), np.full(9, 7, dtype=np.int64), 1, 2,
                       arch == "skipgram", 0.1, seed_state(0, 0), loss)
    assert kept == 6 and loss[1] > 0 and np.isfinite(loss[0])
    assert np.allclose(syn0, want0, atol=1e-5) and np.allclose(syn1, want1, atol=1e-5)
    assert not np.allclose(syn0, rng.normal(0, 0.5, (9, 4)))


@needs_numba
def test_windows_stop_at_line_ends_and_chunks_end_with_lines():
    """Chunks end where lines end; a window never crosses a line, so a word alone on
    its line is never an input (its in-vector stays as it was)."""
    from seqtool.models.word2vec_numba import chunk_bounds, seed_state, train_chunk

    lines = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3], dtype=np.int32)
    assert chunk_bounds(lines, 0, 10, 2) == [(0, 3), (3, 7), (7, 10)]
    assert chunk_bounds(lines, 2, 9, 1) == [(2, 3), (3, 7), (7, 8), (8, 9)]
    assert chunk_bounds(lines, 0, 10, 100) == [(0, 10)]
    # one long line: cut every chunk_words until the rest fits in 4 x chunk_words
    assert chunk_bounds(np.zeros(20, np.int32), 0, 20, 4) == [(0, 4), (4, 20)]
    syn0 = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    before = syn0.copy()
    train_chunk(syn0, np.zeros((8, 3), np.float32), np.array([4, 5, 6, 7], np.int32),
                np.array([0, 0, 1, 2], np.int32), np.ones(8), np.ones(8),
                np.arange(8, dtype=np.int64), 3, 2, False, 0.5, seed_state(1, 0), np.zeros(0))
    assert np.array_equal(syn0[6:8], before[6:8])  # alone on their lines
    assert not np.array_equal(syn0[4:6], before[4:6])


# --------------------------------------------------------------------------- the choice
def test_auto_falls_back_to_torch_without_numba(monkeypatch):
    monkeypatch.setattr(w2v, "numba_available", lambda: False)
    for arch in ("cbow", "skipgram"):
        assert w2v.choose_engine("auto", arch) == "torch"
        assert w2v.choose_engine("torch", arch) == "torch"
        with pytest.raises(ConfigError) as exc:
            w2v.choose_engine("numba", arch)
        assert "numba" in str(exc.value) and "fast" in exc.value.hint


@needs_numba
def test_auto_is_numba_for_cbow_and_torch_for_skipgram():
    """auto follows AUTO_ENGINE where numba is installed; an explicit choice wins."""
    assert w2v.choose_engine("auto", "cbow") == "numba"
    assert w2v.choose_engine("auto", "skipgram") == "torch"
    assert w2v.choose_engine("numba", "skipgram") == "numba"
    assert w2v.choose_engine("torch", "cbow") == "torch"


def test_cli_reports_the_engine(tmp_path, monkeypatch):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(planted_lines(200)) + "\n")
    args = ["train", "word2vec", "--train-file", text, "--arch", "cbow", "--dim", "8",
            "--min-count", "1", "--epochs", "1", "--threads", "1"]
    res = run_cli(*args, "--engine", "torch", "--json", "--out", tmp_path / "a")
    assert res.code == 0, res.err
    assert json.loads(res.out)["engine"] == "torch"
    assert "torch engine" in (tmp_path / "a" / "MODEL_CARD.md").read_text()
    res = run_cli(*args, "--out", tmp_path / "b")  # auto, rich text
    assert res.code == 0, res.err
    want = "numba" if w2v.numba_available() else "torch"
    assert f"({want} engine)" in res.out
    monkeypatch.setattr(w2v, "numba_available", lambda: False)
    assert_user_error(run_cli(*args, "--engine", "numba", "--out", tmp_path / "c"),
                      "numba", "fast")
    assert not (tmp_path / "c").exists()
    res = run_cli(*args, "--json", "--out", tmp_path / "d")
    assert res.code == 0 and json.loads(res.out)["engine"] == "torch"
