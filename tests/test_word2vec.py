"""word2vec: the sampling pieces (unigram^0.75 noise, subsampling, dynamic windows),
training on text with planted co-occurrence structure, the checkpoint and the word2vec
text format (round trip, gensim), similar / analogy / evaluate on hand-made vectors
with hand-computed answers, --init-embeddings, and every kind of bad input giving one
`error:` line, a `hint:` and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import assert_user_error, run_cli, run_subprocess

from seqtool.config import LMModelConfig, Seq2SeqModelConfig, Word2VecConfig
from seqtool.data.tokenizer import WordTokenizer
from seqtool.data.vectors import WordVectors, read_word2vec, write_word2vec
from seqtool.metrics import analogy_accuracy, word_pair_correlation
from seqtool.data.word2vec import (
    FIRST_WORD,
    context_windows,
    encode_corpus,
    keep_probabilities,
    noise_table,
    subsample,
)
from seqtool.errors import ConfigError, DataError, InputError
from seqtool.models import build_model

# --------------------------------------------------------------------------- planted text
GROUPS = {"animal": ["cat", "dog", "cow", "pig", "hen"],
          "tool": ["saw", "axe", "drill", "file", "rake"]}
CONTEXTS = {"animal": ["eats", "sleeps", "runs", "barn", "farm"],
            "tool": ["cuts", "steel", "shed", "sharp", "handle"]}


def planted_lines(n: int = 1500, seed: int = 0) -> list[str]:
    """Each line mixes one group's words with that group's context words, so words of
    one group share contexts and never meet the other group's."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        g = "animal" if i % 2 == 0 else "tool"
        words = [str(rng.choice(GROUPS[g] if k % 2 == 0 else CONTEXTS[g])) for k in range(8)]
        lines.append(" ".join(words))
    return lines


def mean_cosine(vecs: WordVectors, a: list[str], b: list[str]) -> float:
    sims = [vecs.similarity(x, y) for x in a for y in b if x != y]
    return float(np.mean(sims))


def train_vectors(lines: list[str], arch: str, epochs: int = 5, workers: int = 1,
                  **model: object) -> WordVectors:
    from seqtool.commands.word2vec import fit

    tok = WordTokenizer.train(lines, min_freq=1)
    corpus = encode_corpus(lines, tok)
    cfg = Word2VecConfig(arch=arch, dim=16, window=3, negative=4, batch_words=64, **model)
    m = build_model("word2vec", cfg, tok.vocab_size)
    stats = fit(m, corpus, epochs, seed=1, workers=workers)
    assert stats["words_per_s"] > 0 and np.isfinite(stats["loss"])
    return WordVectors(tok.tokens[FIRST_WORD:], m.vectors()[FIRST_WORD:].numpy())


@pytest.mark.parametrize("arch,workers", [("skipgram", 1), ("cbow", 1), ("skipgram", 2)])
def test_words_sharing_contexts_become_similar(arch, workers):
    vecs = train_vectors(planted_lines(), arch, epochs=10, workers=workers)
    animals, tools = GROUPS["animal"], GROUPS["tool"]
    within = (mean_cosine(vecs, animals, animals) + mean_cosine(vecs, tools, tools)) / 2
    across = mean_cosine(vecs, animals, tools)
    assert within > across + 0.1, (within, across)
    for w in animals:  # every word is closer to its own group than to the other
        assert mean_cosine(vecs, [w], animals) > mean_cosine(vecs, [w], tools) + 0.1
    neighbours = [w for w, _ in vecs.nearest(["cat"], top_k=4)]
    assert set(neighbours) <= set(animals + CONTEXTS["animal"]), neighbours


def test_start_is_gensims_uniform_over_plus_minus_one_over_dim():
    """In-vectors U(-1, 1) / dim as gensim 4 (twice the C tool's range), out-vectors 0."""
    m = build_model("word2vec", Word2VecConfig(arch="cbow", dim=50), 400)
    w = m.in_vectors.weight.detach().numpy() * 50
    assert w.min() >= -1.0 and w.max() < 1.0
    assert w.min() < -0.95 and w.max() > 0.95  # the whole range, not half of it
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1 / np.sqrt(3)) < 0.01
    assert not m.out_vectors.weight.detach().numpy().any()


def test_training_is_reproducible():
    lines = planted_lines(200)
    a, b = train_vectors(lines, "skipgram", 1), train_vectors(lines, "skipgram", 1)
    assert np.array_equal(a.matrix, b.matrix)


@pytest.mark.parametrize("arch", ["skipgram", "cbow"])
def test_one_word_update_is_the_word2vec_formula(arch):
    """One predicted word w (id 4) with contexts 5, 6 (and a masked padding slot) and
    noise words 7, 8: the batched update equals word2vec's gradient step, computed from
    the old vectors; the masked slot's row (PAD) is not in the mean and stays unchanged."""
    cfg = Word2VecConfig(arch=arch, dim=3)
    m = build_model("word2vec", cfg, 9)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        m.in_vectors.weight.copy_(torch.from_numpy(rng.normal(size=(9, 3))))
        m.out_vectors.weight.copy_(torch.from_numpy(rng.normal(size=(9, 3))))
    syn0 = m.in_vectors.weight.detach().numpy().copy()
    syn1 = m.out_vectors.weight.detach().numpy().copy()
    lr, ctx, tgt, label = 0.1, [5, 6], [4, 7, 8], np.array([1.0, 0.0, 0.0])
    m.update(torch.tensor([ctx + [0]]), torch.tensor([[True, True, False]]), torch.tensor([tgt]),
             lr)
    want0, want1 = syn0.copy(), syn1.copy()
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    if arch == "cbow":
        h = syn0[ctx].mean(0)
        g = (label - sigmoid(syn1[tgt] @ h)) * lr  # (3,)
        want1[tgt] += g[:, None] * h
        want0[ctx] += g @ syn1[tgt]  # the whole error to each context word
    else:
        g = (label - sigmoid(syn0[ctx] @ syn1[tgt].T)) * lr  # (contexts, targets)
        want1[tgt] += g.T @ syn0[ctx]
        want0[ctx] += g @ syn1[tgt]
    assert np.allclose(m.in_vectors.weight.detach().numpy(), want0, atol=1e-6)
    assert np.allclose(m.out_vectors.weight.detach().numpy(), want1, atol=1e-6)


# --------------------------------------------------------------------------- sampling
def test_noise_distribution_follows_count_to_the_three_quarters():
    counts = np.array([0, 0, 0, 0, 1000, 100, 10, 1, 1, 0, 3])
    table = noise_table(counts)
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    assert np.allclose(table.probabilities(), expected, atol=1e-12)
    draws = table.sample((400_000,), np.random.default_rng(0))
    freq = np.bincount(draws, minlength=len(counts)) / draws.size
    assert np.allclose(freq, expected, atol=3e-3)
    assert freq[counts == 0].sum() == 0


def test_subsampling_keeps_rare_words_and_thins_frequent_ones():
    counts = np.array([0, 0, 0, 0, 100_000, 50, 5])
    keep = keep_probabilities(counts, 1e-3)
    t = 1e-3 * counts.sum()
    assert keep[6] == 1.0 and keep[5] == 1.0  # rare words always kept
    assert keep[4] == pytest.approx((np.sqrt(100_000 / t) + 1) * t / 100_000)
    assert keep[4] < 0.2
    assert np.all(keep_probabilities(counts, 0.0) == 1.0)
    ids = np.repeat(np.arange(4, 7), [100_000, 50, 5]).astype(np.int32)
    from seqtool.data.word2vec import Corpus

    corpus = Corpus(ids, np.zeros_like(ids), counts, len(ids))
    kept, _ = subsample(corpus, keep, np.random.default_rng(0))
    got = np.bincount(kept, minlength=7)
    assert got[6] == 5 and got[5] == 50
    assert abs(got[4] / 100_000 - keep[4]) < 0.01


def test_windows_stay_in_their_line_and_reach():
    ids = np.arange(4, 24, dtype=np.int32)
    lines = np.repeat([0, 1], 10).astype(np.int32)
    ctx, mask, reach = context_windows(ids, lines, 3, np.random.default_rng(0))
    offsets = np.array([-3, -2, -1, 1, 2, 3])
    for i in range(len(ids)):
        seen = ctx[i][mask[i]] - 4  # positions, since ids are 4 + position
        assert all(lines[j] == lines[i] and 0 < abs(j - i) <= 3 for j in seen)
        # a dynamic window: every offset up to the word's reach, inside its line
        want = [i + o for o in offsets if abs(o) <= reach[i] and 0 <= i + o < 20
                and lines[i + o] == lines[i]]
        assert sorted(seen.tolist()) == want
    assert (ctx[~mask] == 0).all()
    assert set(reach.tolist()) == {1, 2, 3}  # drawn per word from 1..window


# --------------------------------------------------------------------------- text format
def hand_vectors() -> tuple[list[str], np.ndarray]:
    """royalty, gender and two filler axes: king - man + woman = queen."""
    words = ["king", "queen", "man", "woman", "apple", "car", "kings", "prince"]
    m = np.array([[1.0, 1.0, 0.0, 0.1], [1.0, -1.0, 0.0, 0.1], [0.0, 1.0, 0.1, 0.0],
                  [0.0, -1.0, 0.1, 0.0], [0.0, 0.0, 1.0, 0.0], [0.1, 0.0, 0.0, 1.0],
                  [1.0, 0.9, 0.2, 0.3], [0.9, 0.8, -0.2, 0.4]], dtype=np.float32)
    return words, m


@pytest.fixture
def vectors_file(tmp_path) -> Path:
    path = tmp_path / "vectors.txt"
    write_word2vec(path, *hand_vectors())
    return path


def test_export_import_round_trip(vectors_file):
    words, m = hand_vectors()
    lines = vectors_file.read_text().splitlines()
    assert lines[0] == f"{len(words)} 4" and lines[1].split()[0] == "king"
    back = read_word2vec(vectors_file)
    assert back.words == words and np.array_equal(back.matrix, m)


def test_headerless_glove_style_file(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2\nof -0.5 1e-3\n")
    vecs = read_word2vec(path)
    assert vecs.words == ["the", "of"] and vecs.dim == 2


def test_gensim_reads_ours_and_we_read_gensims(vectors_file, tmp_path):
    gensim = pytest.importorskip("gensim", reason="gensim (the bench extra) is not installed")
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(vectors_file), binary=False)
    words, m = hand_vectors()
    assert list(kv.index_to_key) == words
    assert np.allclose(kv["queen"], m[1])
    assert kv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "queen"
    out = tmp_path / "from_gensim.txt"
    kv.save_word2vec_format(str(out), binary=False)
    back = read_word2vec(out)
    assert back.words == words and np.allclose(back.matrix, m)


@pytest.mark.parametrize("text,line,what", [
    ("3 2\nthe 0.1 0.2\nof 0.3 0.4\n", "line 1", "announces 3 words"),
    ("2 2\nthe 0.1 0.2\nof 0.3\n", "line 3", "1 numbers"),
    ("2 2\nthe 0.1 0.2\nof 0.3 zero\n", "line 3", "'zero' is not a number"),
    ("2 2\nthe 0.1 0.2\nthe 0.3 0.4\n", "line 3", "appears twice"),
    ("2 2\nthe 0.1 0.2\nof nan 0.4\n", "line 3", "non-finite"),
    ("the\nof\n", "line 1", "header"),
])
def test_wrong_format_names_the_line(tmp_path, text, line, what):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError) as exc:
        read_word2vec(path)
    assert line in exc.value.message and what in exc.value.message
    res = run_cli("similar", "the", "--vectors", path)
    assert_user_error(res, line, str(path))


def test_binary_vectors_file(tmp_path):
    path = tmp_path / "vectors.bin"
    path.write_bytes(b"2 2\nthe \x00\x00\x80?\x00\x00\x00@")
    assert_user_error(run_cli("similar", "the", "--vectors", path), "binary", "binary=True")


# --------------------------------------------------------------------------- queries
def test_analogy_and_similar_on_planted_vectors(vectors_file):
    res = run_cli("analogy", "king", "man", "woman", "--vectors", vectors_file, "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["neighbours"][0]["word"] == "queen"
    assert {"king", "man", "woman"}.isdisjoint(n["word"] for n in out["neighbours"])
    res = run_cli("similar", "king", "--vectors", vectors_file, "--top-k", "2", "--json")
    out = json.loads(res.out)
    assert [n["word"] for n in out["neighbours"]] == ["kings", "prince"]
    _, m = hand_vectors()
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    assert out["neighbours"][0]["cosine"] == pytest.approx(float(unit[0] @ unit[6]), abs=1e-6)
    res = run_cli("analogy", "king", "man", "woman", "--vectors", vectors_file)
    assert res.code == 0 and "queen" in res.out and "king - man + woman" in res.out


def test_unknown_words_are_named_with_close_words(vectors_file, tmp_path):
    res = run_subprocess("similar", "kingg", "--vectors", vectors_file, home=tmp_path)
    assert_user_error(res, "'kingg'", "did you mean", "'king'")
    res = run_subprocess("analogy", "king", "mann", "womann", "--vectors", vectors_file,
                         home=tmp_path)
    assert_user_error(res, "'mann'", "'womann'", "'man'", "'woman'")
    assert "'king'," not in res.err.splitlines()[0]  # the known word is not blamed
    vecs = read_word2vec(vectors_file)
    with pytest.raises(InputError) as exc:
        vecs.nearest(["zzzzzz"])
    assert "zzzzzz" in exc.value.message and exc.value.hint


def test_a_word_missing_in_this_case_is_found_in_another(tmp_path):
    """`athens` finds `Athens` when only that spelling exists; an exact spelling wins;
    among several other spellings, the first in the (frequency-sorted) file."""
    _, m = hand_vectors()
    words = ["King", "queen", "Man", "woman", "apple", "car", "kings", "MAN"]
    path = tmp_path / "cased.txt"
    write_word2vec(path, words, m)
    res = run_cli("analogy", "king", "man", "WOMAN", "--vectors", path, "--json")
    out = json.loads(res.out)
    assert out["query"] == ["King", "Man", "woman"]
    assert out["resolved"] == {"king": "King", "man": "Man", "WOMAN": "woman"}
    assert out["neighbours"][0]["word"] == "queen"
    res = run_cli("similar", "MAN", "--vectors", path, "--json")  # exact beats folding
    assert json.loads(res.out)["resolved"] == {} and json.loads(res.out)["query"] == ["MAN"]
    res = run_cli("similar", "king", "--vectors", path)
    assert res.code == 0 and "king: not in the vocabulary, used King" in res.out


def test_queries_need_exactly_one_source(vectors_file):
    assert_user_error(run_cli("similar", "king"), "--model", "--vectors")
    assert_user_error(run_cli("similar", "king", "--vectors", vectors_file, "--model",
                              vectors_file.parent), "exactly one")
    assert_user_error(run_cli("similar", "king", "--vectors", vectors_file, "--top-k", "0"),
                      "--top-k")
    assert_user_error(run_cli("similar", "king", "--vectors", vectors_file.parent / "no.txt"),
                      "not found")


# --------------------------------------------------------------------------- evaluation
def write_benchmarks(folder: Path) -> tuple[Path, Path]:
    ws = folder / "ws.tsv"
    # cosines from hand_vectors(): king-kings 0.977 > king-prince 0.956 > man-apple 0.0995
    # > king-queen 0.005; the gold scores swap the last two: 1 - 6 * 2 / (4 * 15) = 0.8
    ws.write_text("# word1\tword2\tscore\nking\tkings\t9.0\nKing\tPrince\t8.0\n"
                  "man\tapple\t1.0\nking\tqueen\t2.0\nking\tunicorn\t5.0\n")
    qa = folder / "questions.txt"
    qa.write_text(": royalty\nman king woman queen\nMAN KING WOMAN QUEEN\n"
                  "man woman king unicorn\n: gram-plural\nking kings man apple\n"
                  "king kings queen prince\n")
    return ws, qa


def test_evaluate_on_hand_made_files(vectors_file, tmp_path):
    ws, qa = write_benchmarks(tmp_path)
    vecs = read_word2vec(vectors_file)
    r = word_pair_correlation(vecs, ws)
    assert r["spearman"] == pytest.approx(0.8) and r["pairs"] == 4 and r["oov_pairs"] == 1
    a = analogy_accuracy(vecs, qa)
    # royalty: both spellings of man:king = woman:queen right; the unicorn line is skipped.
    # plural: king - man + ... wrong answers by construction (apple), prince: check below
    words, m = hand_vectors()
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    q = unit[6] - unit[0] + unit[1]  # kings - king + queen
    cand = [i for i in range(len(words)) if words[i] not in ("king", "kings", "queen")]
    best = words[max(cand, key=lambda i: unit[i] @ q)]
    q2 = unit[6] - unit[0] + unit[2]  # kings - king + man
    cand2 = [i for i in range(len(words)) if words[i] not in ("king", "kings", "man")]
    best2 = words[max(cand2, key=lambda i: unit[i] @ q2)]
    plural_right = int(best == "prince") + int(best2 == "apple")
    assert a["skipped_oov"] == 1 and a["answered"] == 4
    assert a["sections"][0] == {"section": "royalty", "correct": 2, "total": 2,
                                "accuracy": 1.0}
    assert a["correct"] == 2 + plural_right
    assert a["accuracy"] == pytest.approx((2 + plural_right) / 4)
    assert a["semantic"] == 1.0 and a["syntactic"] == pytest.approx(plural_right / 2)
    res = run_cli("evaluate", "word2vec", "--vectors", vectors_file, "--wordsim", ws,
                  "--analogies", qa, "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["wordsim"]["spearman"] == pytest.approx(0.8)
    assert out["analogies"]["answered"] == 4
    res = run_cli("evaluate", "word2vec", "--vectors", vectors_file, "--wordsim", ws,
                  "--analogies", qa)
    assert res.code == 0 and "0.8000" in res.out and "royalty" in res.out


def test_evaluate_bad_benchmark_files(vectors_file, tmp_path):
    ws, qa = write_benchmarks(tmp_path)
    bad = tmp_path / "bad.tsv"
    bad.write_text("king\tqueen\t5\nking queen\n")
    assert_user_error(run_cli("evaluate", "word2vec", "--vectors", vectors_file,
                              "--wordsim", bad, "--analogies", qa), "line 2")
    bad_q = tmp_path / "bad_q.txt"
    bad_q.write_text(": s\nman king woman\n")
    assert_user_error(run_cli("evaluate", "word2vec", "--vectors", vectors_file,
                              "--wordsim", ws, "--analogies", bad_q), "line 2", "expected 4")
    assert_user_error(run_cli("evaluate", "word2vec", "--vectors", vectors_file,
                              "--wordsim", tmp_path / "nope.tsv", "--analogies", qa),
                      "not found")


def test_evaluation_matches_gensim(tmp_path):
    """Same numbers as gensim's evaluate_word_pairs / evaluate_word_analogies on the
    real files, for vectors where some analogies hold."""
    gensim = pytest.importorskip("gensim", reason="gensim (the bench extra) is not installed")
    from gensim.test.utils import datapath

    from seqtool.commands.word2vec import benchmark_file

    ws_path, qa_path = benchmark_file("wordsim", None), benchmark_file("analogies", None)
    assert ws_path.samefile(datapath("wordsim353.tsv"))
    rng = np.random.default_rng(0)
    words: dict[str, np.ndarray] = {}
    offsets: dict[str, np.ndarray] = {}
    section = ""
    for line in qa_path.read_text().splitlines()[:3000]:
        if line.startswith(":"):
            section = line
            offsets[section] = rng.normal(size=20)
            continue
        a, b, c, d = line.split()
        for x, y in ((a, b), (c, d)):
            words.setdefault(x.lower(), rng.normal(size=20))
            words.setdefault(y.lower(), words[x.lower()] + offsets[section]
                             + rng.normal(scale=1.5, size=20))
    for line in ws_path.read_text().splitlines():
        if not line.startswith("#"):
            for w in line.split("\t")[:2]:
                words.setdefault(w.lower(), rng.normal(size=20))
    names = list(words)
    names.insert(5, names[0].capitalize())  # a rarer second spelling: case folding
    matrix = np.stack([words[n.lower()] + rng.normal(scale=0.1, size=20) for n in names])
    kv = gensim.models.KeyedVectors(20)
    kv.add_vectors(names, matrix.astype(np.float32))
    ours = WordVectors(names, matrix)
    theirs_ws = kv.evaluate_word_pairs(str(ws_path))
    assert word_pair_correlation(ours, ws_path)["spearman"] == pytest.approx(
        theirs_ws[1].statistic, abs=1e-6)
    restrict = len(names) - 50
    theirs_acc, _ = kv.evaluate_word_analogies(str(qa_path), restrict_vocab=restrict)
    mine = analogy_accuracy(ours, qa_path, restrict)
    assert 0.05 < mine["accuracy"] < 0.95
    assert mine["accuracy"] == pytest.approx(theirs_acc, abs=1e-9)


# --------------------------------------------------------------------------- checkpoint + CLI
@pytest.fixture(scope="module")
def w2v_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("w2v")
    (folder / "train.txt").write_text("\n".join(planted_lines(600)) + "\n")
    out = folder / "run"
    res = run_subprocess("train", "word2vec", "--train-file", folder / "train.txt",
                         "--dim", "16", "--window", "3", "--min-count", "2", "--epochs", "5",
                         "--sample", "0",
                         "--set", "model.batch_words=64", "--threads", "1", "--out", out,
                         "--json", home=tmp_path_factory.mktemp("home"))
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["vocab_size"] == 20 and summary["words_per_s"] > 0
    return out


def test_checkpoint_folder_and_queries(w2v_run, tmp_path):
    names = {f.name for f in w2v_run.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md"} <= names
    meta = json.loads((w2v_run / "config.json").read_text())
    assert meta["kind"] == "word2vec" and meta["model"]["arch"] == "skipgram"
    res = run_cli("similar", "cat", "--model", w2v_run, "--top-k", "3", "--json")
    assert res.code == 0, res.err
    assert {n["word"] for n in json.loads(res.out)["neighbours"]} <= set(
        GROUPS["animal"] + CONTEXTS["animal"])
    out = tmp_path / "v.txt"
    res = run_cli("export-vectors", w2v_run, out)
    assert res.code == 0, res.err
    from seqtool.commands.word2vec import checkpoint_vectors

    a, b = checkpoint_vectors(w2v_run), read_word2vec(out)
    assert a.words == b.words and np.array_equal(a.matrix, b.matrix)
    assert a.words[0] in ("cat", "dog", "cow", "pig", "hen", "eats", "sleeps", "runs", "barn",
                          "farm", "saw", "axe", "drill", "file", "rake", "cuts", "steel",
                          "shed", "sharp", "handle")
    res = run_cli("info", w2v_run)
    assert res.code == 0 and "in_vectors" in res.out


def test_train_word2vec_bad_input(tmp_path, w2v_run):
    text = tmp_path / "t.txt"
    text.write_text("one two three\n")
    assert_user_error(run_cli("train", "word2vec", "--train-file", text, "--out",
                              tmp_path / "r"), "min-count")
    assert_user_error(run_cli("train", "word2vec", "--train-file", text, "--window", "0",
                              "--out", tmp_path / "r"), "model.window")
    assert_user_error(run_cli("train", "word2vec", "--out", tmp_path / "r"), "--corpus")
    assert_user_error(run_cli("train", "word2vec", "--train-file", text, "--min-count", "1",
                              "--out", w2v_run), "already")
    assert_user_error(run_cli("similar", "cat", "--model", tmp_path), "no seqtool checkpoint")
    for key in ("train.keep_last=2", "train.tensorboard=true"):  # nothing to evaluate
        assert_user_error(run_cli("train", "word2vec", "--train-file", text, "--set", key,
                                  "--out", tmp_path / "r"), "train.keep_last")


def test_lm_checkpoint_is_not_word_vectors(tmp_path):
    from seqtool.checkpoint import save_checkpoint
    from seqtool.config import RunConfig

    tok = WordTokenizer.train(["a b c"])
    model = build_model("lm", LMModelConfig(emb_dim=8, hidden=8, layers=1), tok.vocab_size)
    save_checkpoint(tmp_path / "lm", model=model, config=RunConfig(model=model.cfg),
                    tokenizer=tok, card="")
    assert_user_error(run_cli("similar", "a", "--model", tmp_path / "lm"), "'lm'", "word2vec")


# --------------------------------------------------------------------------- init embeddings
def test_init_embeddings_copies_vectors_into_the_lm(vectors_file, tmp_path):
    from seqtool.models.pretrained import init_embeddings

    words, m = hand_vectors()
    tok = WordTokenizer.train(["king queen man woman zebra King", "king"])
    model = build_model("lm", LMModelConfig(emb_dim=4, hidden=8, layers=1), tok.vocab_size)
    report = init_embeddings(model, vectors_file, tok)
    assert report["vocabulary"] == {"words": 6, "found": 5, "copied": 5}  # not zebra
    weight = model.embed.tables[0].weight
    for w in ("king", "queen", "man", "woman"):
        assert torch.equal(weight[tok.token_to_id(w)], torch.from_numpy(m[words.index(w)]))
    assert torch.equal(weight[tok.token_to_id("King")], torch.from_numpy(m[0]))  # lower-cased
    wrong = build_model("lm", LMModelConfig(emb_dim=8, hidden=8, layers=1), tok.vocab_size)
    with pytest.raises(ConfigError) as exc:
        init_embeddings(wrong, vectors_file, tok)
    assert "emb_dim" in exc.value.message and "4" in exc.value.hint


def test_init_embeddings_adaptive_head_only_and_translate(vectors_file):
    from seqtool.models.pretrained import init_embeddings

    _, m = hand_vectors()
    tok = WordTokenizer.train(["king king king queen queen man woman"])  # ids by frequency
    cfg = LMModelConfig(emb_dim=4, hidden=8, layers=1, softmax="adaptive", cutoffs=(6,))
    model = build_model("lm", cfg, tok.vocab_size)  # head: ids 0-5 (king, queen)
    report = init_embeddings(model, vectors_file, tok)
    assert report["vocabulary"] == {"words": 4, "found": 4, "copied": 2}
    assert torch.equal(model.embed.tables[0].weight[tok.token_to_id("queen")],
                       torch.from_numpy(m[1]))
    s2s = build_model("translate", Seq2SeqModelConfig(emb_dim=4, enc_hidden=4, dec_hidden=8),
                      (tok.vocab_size, tok.vocab_size))
    report = init_embeddings(s2s, vectors_file, tok, tok)
    assert report["source"]["copied"] == 4 and report["target"]["copied"] == 4
    assert torch.equal(s2s.tgt_embed.weight[tok.token_to_id("man")], torch.from_numpy(m[2]))
    assert torch.all(s2s.src_embed.weight[0] == 0)  # <pad> untouched


def test_train_lm_with_init_embeddings(tmp_path, vectors_file):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(["the king and the queen", "a man and a woman"] * 20) + "\n")
    res = run_cli("train", "lm", "--train-file", text, "--valid-file", text, "--config",
                  "lm-tiny", "--set", "model.emb_dim=4", "--set", "model.hidden=8",
                  "--set", "train.epochs=1", "--set", "train.max_steps=2",
                  "--init-embeddings", vectors_file, "--out", tmp_path / "run", "--json")
    assert res.code == 0, res.err
    init = json.loads(res.out)["init_embeddings"]
    assert init["vocabulary"]["found"] == 4 and init["file"] == str(vectors_file)
    res = run_cli("train", "lm", "--train-file", text, "--valid-file", text, "--config",
                  "lm-tiny", "--init-embeddings", vectors_file, "--out", tmp_path / "run2")
    assert_user_error(res, "emb_dim", "--set model.emb_dim=4")
