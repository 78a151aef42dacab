"""The on-disk token store (data/store.py): streamed reading equals read_lines, the
store's batches equal ParallelData's for a seed, the key follows the files and the
tokenizers, a failed build leaves nothing behind, and sentencepiece trains on a
bounded sample."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from seqtool.config import TokenizerConfig
from seqtool.data import store as st
from seqtool.data import streams
from seqtool.data.store_batches import StoreParallelData
from seqtool.data.parallel import ParallelData, encode_pairs, read_parallel
from seqtool.data.text import read_lines
from seqtool.data.tokenizer import WordTokenizer, train_tokenizer
from seqtool.errors import DataError

WORDS = "ein der die das haus mann frau hund katze spielt läuft im schnee auf".split()


def _corpus(tmp_path: Path, n: int, seed: int = 0, name: str = "train") -> st.ParallelFiles:
    rng = random.Random(seed)
    src, tgt = [], []
    for i in range(n):
        k = rng.randint(1, 12)
        src.append(" ".join(rng.choice(WORDS) for _ in range(k)))
        tgt.append(" ".join(rng.choice(WORDS).upper() for _ in range(rng.randint(1, 9))))
        if i % 37 == 5:
            tgt[-1] = "   "  # an empty side: skipped
    (tmp_path / f"{name}.src").write_text("\n".join(src) + "\n", "utf-8")
    (tmp_path / f"{name}.tgt").write_text("\n".join(tgt) + "\n", "utf-8")
    return st.ParallelFiles(tmp_path / f"{name}.src", tmp_path / f"{name}.tgt")


@pytest.mark.parametrize("text", ["a\nb\n", "a\r\nb", "\ufeffx\r\ry\n\nz", "a\x0bb\u2028c\x85",
                                  "one line", "x\n" * 3 + "\n\n"])
def test_iter_lines_equals_read_lines(tmp_path: Path, text: str) -> None:
    p = tmp_path / "f.txt"
    p.write_bytes(text.encode("utf-8"))
    assert list(st.iter_lines(p)) == read_lines(p)


def test_iter_lines_across_chunk_boundaries(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """\r\n split by a piece boundary, lines longer than a piece, multi-byte characters."""
    monkeypatch.setattr(streams, "READ_CHARS", 7)
    rng = random.Random(3)
    parts = []
    for _ in range(6_000):
        parts.append("".join(rng.choice("abcé€ ") for _ in range(rng.randint(0, 40))))
        parts.append(rng.choice(["\n", "\r\n", "\r", "\u2028"]))
    text = "".join(parts)
    p = tmp_path / "big.txt"
    p.write_bytes(text.encode("utf-8"))
    assert list(st.iter_lines(p)) == text.splitlines()
    gz = tmp_path / "big.txt.gz"
    gz.write_bytes(gzip.compress(text.encode("utf-8")))
    assert list(st.iter_lines(gz, gz=True)) == text.splitlines()


def test_iter_lines_bad_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("ok\nstraße\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 \\(line 2"):
        list(st.iter_lines(tmp_path / "latin1.txt"))
    (tmp_path / "empty.txt").write_bytes(b"  \n")
    with pytest.raises(DataError, match="is empty"):
        list(st.iter_lines(tmp_path / "empty.txt"))
    with pytest.raises(DataError, match="not found"):
        list(st.iter_lines(tmp_path / "missing.txt"))


def test_pairs_match_read_parallel_and_refuse_misaligned(tmp_path: Path) -> None:
    files = _corpus(tmp_path, 300)
    counts: dict[str, int] = {}
    pairs = list(files.pairs(counts))
    src, tgt, skipped = read_parallel(files.src, files.tgt)
    assert pairs == list(zip(src, tgt, strict=True))
    assert counts["skipped"] == skipped > 0
    files.tgt.write_text("only\none\n", "utf-8")
    with pytest.raises(DataError, match="not aligned.*300 lines.* has 2"):
        list(files.pairs())


def _toks(files: st.ParallelFiles) -> tuple[WordTokenizer, WordTokenizer]:
    src, tgt, _ = read_parallel(files.src, files.tgt)
    return WordTokenizer.train(src, min_freq=2), WordTokenizer.train(tgt)


@pytest.mark.parametrize("workers", [1, 2])
def test_store_batches_equal_parallel_data(tmp_path: Path, workers: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st, "CHUNK_PAIRS", 64)  # many chunks, reassembled in order
    files = _corpus(tmp_path, 2_000)
    src_tok, tgt_tok = _toks(files)
    store = st.token_store(files, src_tok, tgt_tok, tmp_path / "stores", workers=workers)
    assert store.built and store.meta["workers"] == workers
    src, tgt, _ = read_parallel(files.src, files.tgt)
    pairs = encode_pairs(src, tgt, src_tok, tgt_tok)
    assert len(store) == len(pairs) and [store.pair(i) for i in (0, 7, len(pairs) - 1)] == \
        [pairs[0], pairs[7], pairs[-1]]
    valid = pairs[:10]
    old = ParallelData(pairs, valid, batch_size=16, seed=7, pool_batches=5)
    new = StoreParallelData(store, valid, batch_size=16, seed=7, pool_batches=5)
    assert new.steps_per_epoch() == old.steps_per_epoch()
    assert new.tokens_per_epoch() == old.tokens_per_epoch()
    for epoch in (0, 1):
        a, b = list(old.train_batches(epoch)), list(new.train_batches(epoch))
        assert len(a) == len(b) == old.steps_per_epoch()
        for x, y in zip(a, b, strict=True):
            assert x.keys() == y.keys()
            for k in x:
                assert x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]), k
    first = [t["tgt"] for t in new.train_batches(0)][:3]
    other = [t["tgt"] for t in StoreParallelData(store, valid, 16, seed=8).train_batches(0)]
    assert any(x.shape != y.shape or not torch.equal(x, y) for x, y in zip(first, other[:3],
                                                                           strict=True))


def test_store_is_reused_and_rekeyed(tmp_path: Path) -> None:
    files = _corpus(tmp_path, 200)
    src_tok, tgt_tok = _toks(files)
    root = tmp_path / "stores"
    first = st.token_store(files, src_tok, tgt_tok, root, workers=1)
    again = st.token_store(files, src_tok, tgt_tok, root, workers=1)
    assert first.built and not again.built and again.path == first.path
    other_tok = WordTokenizer.train(read_lines(files.src))  # min_freq 1: another vocabulary
    rekeyed = st.token_store(files, other_tok, tgt_tok, root, workers=1)
    assert rekeyed.built and rekeyed.path != first.path
    assert rekeyed.pair(0)[0] == other_tok.encode(read_lines(files.src)[0])
    with open(files.src, "a", encoding="utf-8") as fh:  # the corpus changes
        fh.write("haus\n")
    with open(files.tgt, "a", encoding="utf-8") as fh:
        fh.write("HAUS\n")
    changed = st.token_store(files, src_tok, tgt_tok, root, workers=1)
    assert changed.built and changed.path not in (first.path, rekeyed.path)
    assert len(changed) == len(first) + 1
    (changed.path / "meta.json").write_text("{broken", "utf-8")  # damaged: rebuilt
    assert st.token_store(files, src_tok, tgt_tok, root, workers=1).built
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_disk_full_leaves_no_half_store(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes a write fail (EFBIG) as a full disk would (ENOSPC): one
    DataError, the temporary folder removed, the next build (with room) succeeds."""
    files = _corpus(tmp_path, 3_000)
    root = tmp_path / "stores"
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from pathlib import Path
        from seqtool.data import store as st
        from seqtool.data.tokenizer import WordTokenizer
        from seqtool.data.text import read_lines
        from seqtool.errors import DataError
        files = st.ParallelFiles(Path({str(files.src)!r}), Path({str(files.tgt)!r}))
        tok = WordTokenizer.train(read_lines(files.src) + read_lines(files.tgt))
        st.CHUNK_PAIRS = 100
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        if sys.argv[1] == "lm":
            from seqtool.data.lmstore import stream_store
            build = lambda: stream_store(files.src, tok, {str(root)!r}, workers=1)
        else:
            build = lambda: st.token_store(files, tok, tok, {str(root)!r}, workers=1)
        try:
            build()
        except DataError as exc:
            print("ERROR", exc.message, "|", exc.hint)
            sys.exit(2)
    """)
    for kind in ("pairs", "lm"):
        run = subprocess.run([sys.executable, "-c", script, kind], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert run.stdout.startswith("ERROR no space left while building the token store")
        assert list(root.iterdir()) == []  # no store, no temporary folder
    tok = WordTokenizer.train(read_lines(files.src) + read_lines(files.tgt))
    store = st.token_store(files, tok, tok, root, workers=1)
    assert store.built and len(store) > 2_900
    from seqtool.data.lmstore import stream_store

    assert len(stream_store(files.src, tok, root, workers=1)) > 3_000


def test_word_tokenizers_from_stream_equal_in_memory(tmp_path: Path) -> None:
    files = _corpus(tmp_path, 500)
    src, tgt, _ = read_parallel(files.src, files.tgt)
    tc = TokenizerConfig(kind="word", min_freq=2, lowercase=True)
    s, t = st.train_pair_tokenizers(tc, False, files)
    assert s.tokens == WordTokenizer.train(src, 2, 0, True).tokens  # type: ignore[attr-defined]
    assert t.tokens == WordTokenizer.train(tgt, 2, 0, True).tokens  # type: ignore[attr-defined]
    j, j2 = st.train_pair_tokenizers(tc, True, files)
    assert j is j2 and j.tokens == WordTokenizer.train(src + tgt, 2, 0, True).tokens  # type: ignore[attr-defined]


def test_sentencepiece_sample_is_bounded(tmp_path: Path) -> None:
    files = _corpus(tmp_path, 1_500)
    src, tgt, _ = read_parallel(files.src, files.tgt)
    (everything,) = st.sample_pair_lines(files, 10_000, (0, 0), seed=1)
    assert everything == src + tgt  # fits: all lines, in today's order
    a, b = st.sample_pair_lines(files, 100, (0, 1), seed=1)
    assert len(a) == len(b) == 100 and set(a) <= set(src) and set(b) <= set(tgt)
    assert a == st.sample_pair_lines(files, 100, (0, 1), seed=1)[0]  # seeded
    assert a != st.sample_pair_lines(files, 100, (0, 1), seed=2)[0]
    tc = TokenizerConfig(kind="unigram", vocab_size=60, sample_size=10_000)
    small, _ = st.train_pair_tokenizers(tc, True, files)
    same = train_tokenizer(src + tgt, "unigram", 60)
    assert small.proto == same.proto  # type: ignore[attr-defined]


def test_store_files_are_flat_arrays(tmp_path: Path) -> None:
    files = _corpus(tmp_path, 100)
    src_tok, tgt_tok = _toks(files)
    store = st.token_store(files, src_tok, tgt_tok, tmp_path / "s", workers=1)
    meta = json.loads((store.path / "meta.json").read_text("utf-8"))
    off = np.fromfile(store.path / "tgt.off", np.int64)
    assert off[0] == 0 and off[-1] == meta["tgt_tokens"] == \
        np.fromfile(store.path / "tgt.ids", np.int32).size
    assert (np.diff(off) == np.fromfile(store.path / "tgt.len", np.int32)).all()


# --------------------------------------------------------------------------- LM streams
def _text(tmp_path: Path, n: int = 700) -> Path:
    rng = random.Random(5)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 15))) for _ in range(n)]
    p = tmp_path / "lm.txt"
    p.write_text("\n".join(lines) + "\n", "utf-8")
    return p


@pytest.mark.parametrize("workers", [1, 2])
def test_lm_stream_store_equals_encode_stream(tmp_path: Path, workers: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtool.data.lm import LMData, encode_stream
    from seqtool.data.lmstore import MemmapLMData, stream_store

    monkeypatch.setattr(st, "CHUNK_PAIRS", 50)
    monkeypatch.setattr("seqtool.data.lmstore.CHUNK_PAIRS", 50)
    path = _text(tmp_path)
    tok = WordTokenizer.train(read_lines(path), min_freq=3)
    ref = encode_stream(read_lines(path), tok)
    stream = stream_store(path, tok, tmp_path / "streams", workers=workers)
    assert stream.dtype == np.int32 and isinstance(stream, np.memmap)
    assert torch.equal(torch.from_numpy(np.array(stream, np.int64)), ref)
    valid = ref[:200]
    old, new = LMData(ref, valid, 7, 9), MemmapLMData(stream, valid, 7, 9)
    assert new.steps_per_epoch() == old.steps_per_epoch()
    assert new.tokens_per_epoch() == old.tokens_per_epoch()
    for a, b in zip(old.train_batches(0), new.train_batches(0), strict=True):
        assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])
    assert sum(1 for _ in new.train_batches(0)) == old.steps_per_epoch()
    assert [torch.equal(a["input"], b["input"]) for a, b in
            zip(old.valid_batches(), new.valid_batches(), strict=True)]


def test_lm_stream_store_is_keyed(tmp_path: Path) -> None:
    from seqtool.data.lmstore import stream_store

    path = _text(tmp_path, 100)
    root = tmp_path / "streams"
    tok = WordTokenizer.train(read_lines(path))
    a = stream_store(path, tok, root, workers=1)
    assert len(list(root.glob("*.int32"))) == 1
    stream_store(path, tok, root, workers=1)  # reused
    assert len(list(root.glob("*.int32"))) == 1
    other = WordTokenizer.train(read_lines(path), max_vocab=8)
    b = stream_store(path, other, root, workers=1)
    assert len(list(root.glob("*.int32"))) == 2 and (np.array(b) != np.array(a)).any()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("haus haus\n")
    c = stream_store(path, tok, root, workers=1)
    assert len(c) == len(a) + 3 and len(list(root.glob("*.int32"))) == 3
    (next(iter(root.glob("*.json")))).write_text("{", "utf-8")  # damaged: rebuilt
    stream_store(path, tok, root, workers=1)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_lm_tokenizer_from_stream(tmp_path: Path) -> None:
    from seqtool.data.lmstore import train_text_tokenizer

    path = _text(tmp_path, 400)
    word = train_text_tokenizer(TokenizerConfig(kind="word", min_freq=2), path)
    assert word.tokens == WordTokenizer.train(read_lines(path), 2).tokens  # type: ignore[attr-defined]
    sp = train_text_tokenizer(TokenizerConfig(kind="unigram", vocab_size=40), path)
    assert sp.proto == train_tokenizer(read_lines(path), "unigram", 40).proto  # type: ignore[attr-defined]
    few = train_text_tokenizer(TokenizerConfig(kind="unigram", vocab_size=40, sample_size=150),
                               path)
    assert few.proto != sp.proto  # type: ignore[attr-defined]


@pytest.mark.corpus
def test_multi30k_store_batches_equal_in_memory(corpora_dir: Path) -> None:
    """The real corpus (29,000 pairs, gzip, through the corpus store): the tokenizers
    from the stream and every batch of an epoch equal the in-memory path's."""
    from seqtool.config import DataConfig
    from seqtool.data.corpora import import_corpus
    from seqtool.data.parallel import translation_split

    import_corpus("multi30k", corpora_dir / "multi30k")
    data = DataConfig(corpus="multi30k", src_lang="de", tgt_lang="en")
    files = st.train_files(data)
    assert files.gz
    src, tgt, _ = translation_split(data, "train")
    tc = TokenizerConfig(kind="word", min_freq=2, lowercase=True)
    src_tok, tgt_tok = st.train_pair_tokenizers(tc, False, files)
    assert src_tok.tokens == WordTokenizer.train(src, 2, 0, True).tokens  # type: ignore[attr-defined]
    pairs = encode_pairs(src, tgt, src_tok, tgt_tok)
    store = st.token_store(files, src_tok, tgt_tok, workers=2)
    old = ParallelData(pairs, pairs[:5], batch_size=64, seed=1234)
    new = StoreParallelData(store, pairs[:5], batch_size=64, seed=1234)
    for x, y in zip(old.train_batches(3), new.train_batches(3), strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)


# --------------------------------------------------------------------------- CLI
def test_train_translate_builds_then_reuses_the_store(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from cli_runner import assert_user_error, run_cli

    from seqtool.data.toy import chars, date_pairs

    pairs = [(chars(s), chars(t)) for s, t in date_pairs(80, seed=1)]
    for side, k in (("src", 0), ("tgt", 1)):
        (tmp_path / f"train.{side}").write_text("".join(p[k] + "\n" for p in pairs), "utf-8")
        (tmp_path / f"valid.{side}").write_text("".join(p[k] + "\n" for p in pairs[:8]), "utf-8")
    args = ["train", "translate", "--train-src", tmp_path / "train.src", "--train-tgt",
            tmp_path / "train.tgt", "--valid-src", tmp_path / "valid.src", "--valid-tgt",
            tmp_path / "valid.tgt", "--config", "translate-tiny", "--device", "cpu",
            "--set", "train.max_steps=1", "--set", "data.workers=1"]
    first = run_cli(*args, "--out", tmp_path / "a", "--json")
    assert first.code == 0, first.err
    store = json.loads(first.out)["token_store"]
    assert store["built"] and store["workers"] == 1 and Path(store["path"]).is_dir()
    second = run_cli(*args, "--out", tmp_path / "b")
    assert second.code == 0, second.err
    assert f"token store (reused): {store['path']}" in second.out.replace("\n", "")
    third = run_cli(*args, "--out", tmp_path / "c", "--json", "--set", "tokenizer.min_freq=3")
    assert third.code == 0, third.err
    assert json.loads(third.out)["token_store"]["path"] != store["path"]
    (tmp_path / "train.tgt").write_text("1 2\n", "utf-8")
    assert_user_error(run_cli(*args, "--out", tmp_path / "d"), "not aligned", "80 lines")


def test_store_shards_equal_bucketed_shards(tmp_path: Path) -> None:
    """Under torchrun (seqtool/distributed.py) each rank's store batches are those of
    the in-memory data's shard: the same dealing, the same dropped tail."""
    files = _corpus(tmp_path, 600)
    src_tok, tgt_tok = _toks(files)
    store = st.token_store(files, src_tok, tgt_tok, tmp_path / "stores", workers=1)
    src, tgt, _ = read_parallel(files.src, files.tgt)
    pairs = encode_pairs(src, tgt, src_tok, tgt_tok)
    old = ParallelData(pairs, pairs[:10], batch_size=16, seed=3, pool_batches=5)
    new = StoreParallelData(store, pairs[:10], batch_size=16, seed=3, pool_batches=5)
    seen: list[int] = []
    for rank in (0, 1):
        a, b = old.shard(rank, 2), new.shard(rank, 2)
        assert a.steps_per_epoch() == b.steps_per_epoch() > 0
        xs, ys = list(a.train_batches(0)), list(b.train_batches(0))
        assert len(xs) == len(ys) == b.steps_per_epoch()
        for x, y in zip(xs, ys, strict=True):
            assert all(torch.equal(x[k], y[k]) for k in x)
        seen += [int(i) for idx in b.batch_indices(0) for i in idx]
    assert len(seen) == len(set(seen))  # no pair twice across the ranks


def test_lm_stream_store_shards_equal_lmdata_shards(tmp_path: Path) -> None:
    from seqtool.data.lm import LMData, encode_stream
    from seqtool.data.lmstore import MemmapLMData, stream_store

    path = _text(tmp_path)
    tok = WordTokenizer.train(read_lines(path), min_freq=3)
    ref = encode_stream(read_lines(path), tok)
    stream = stream_store(path, tok, tmp_path / "streams", workers=1)
    valid = ref[:200]
    for rank in (0, 1):
        old = LMData(ref, valid, 8, 9).shard(rank, 2)
        new = MemmapLMData(stream, valid, 8, 9).shard(rank, 2)
        assert isinstance(new.train, np.memmap)  # a view, not a copy
        assert new.steps_per_epoch() == old.steps_per_epoch()
        for a, b in zip(old.train_batches(0), new.train_batches(0), strict=True):
            assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])
