"""Tokenizers (word, sentencepiece unigram / BPE), the `seqtool tokenizer` CLI and
the cached LM token stream (seqtool.data.cache)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.data import cache
from seqtool.data.lm import encode_stream
from seqtool.data.text import read_lines
from seqtool.data.tokenizer import (
    EOS,
    SPECIALS,
    UNK,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)
from seqtool.errors import ConfigError, DataError


def _text(n_lines: int = 300, seed: int = 0) -> list[str]:
    """Made-up sentences over a small vocabulary (words share letters for subwords)."""
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "mat", "then", "cats", "sang", "at", "hat", "ran",
             "rat", "tan", "than", "that", "this", "these", "those", "sun", "sunset"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(n_lines)]


# --------------------------------------------------------------------------- word level
def test_word_vocab_is_frequency_ordered_with_alphabetical_ties() -> None:
    tok = WordTokenizer.train(["b a c a", "b a d", "<eos> e"])
    assert tok.tokens[:4] == list(SPECIALS)
    assert tok.tokens[4:] == ["a", "b", "c", "d", "e"]  # a:3, b:2, then ties a-z


def test_word_min_freq_and_unknowns() -> None:
    tok = WordTokenizer.train(["x x y", "x y z"], min_freq=2)
    assert tok.tokens[4:] == ["x", "y"]
    assert tok.encode("x z q") == [4, UNK, UNK]
    assert WordTokenizer.train(["x x y", "x y z"], max_vocab=5).tokens[4:] == ["x"]


def test_word_tokenizer_segments_unspaced_japanese_into_vocabulary_words() -> None:
    # a KyTea-segmented corpus; the user types Japanese without spaces
    lines = ["私 は テニス 部 の 部員 で す 。", "私 は 学生 で す 。",
             "彼 は テニス が 好き で す 。", "テニス は 楽し い 。"] * 3
    tok = WordTokenizer.train(lines)
    assert tok.pieces("私はテニス部の部員です。") == "私 は テニス 部 の 部員 で す 。".split()
    assert tok.pieces("彼はテニスが好きです") == "彼 は テニス が 好き で す".split()
    # a character outside the vocabulary is its own (unknown) piece; Latin runs stay whole
    # no case in vocab
    assert tok.pieces("彼はiPhoneが好き") == ["彼", "は", "iphone", "が", "好き"]
    assert tok.pieces("猫は楽しい") == ["猫", "は", "楽し", "い"]
    assert tok.encode("猫は")[0] == UNK
    # spaced (corpus-style) input, known words and other scripts are untouched
    assert tok.pieces("私 は 学生 で す 。") == "私 は 学生 で す 。".split()
    assert tok.pieces("hello wrld") == ["hello", "wrld"]


def test_word_tokenizer_reads_plain_english_as_a_tokenized_lowercased_corpus() -> None:
    corpus = ["i don 't know .", "it 's a book , is it ?", "he said \" hello \" ."] * 2
    tok = WordTokenizer.train(corpus)
    assert tok.pieces("I don't know.") == "i don 't know .".split()
    assert tok.pieces('He said "hello."') == ["he", "said", '"', "hello", ".", '"']
    assert tok.pieces("It's a book, is it?") == "it 's a book , is it ?".split()
    # PTB style clitics, and a cased vocabulary keeps the case
    ptb = WordTokenizer.train(["I do n't know .", "Do n't ."])
    assert ptb.pieces("I don't know.") == ["I", "do", "n't", "know", "."]
    assert ptb.pieces("i know") == ["i", "know"] and ptb.encode("i")[0] == UNK
    # unknown words stay whole; known tokens are never split
    assert tok.pieces("Zorp's.") == ["zorp's", "."]
    assert WordTokenizer.train(["e.g. ok"]).pieces("e.g. ok") == ["e.g.", "ok"]


def test_word_save_load_round_trip(tmp_path: Path) -> None:
    tok = train_tokenizer(_text(), "word", lowercase=True)
    tok.save(tmp_path)
    back = load_tokenizer(tmp_path)
    line = "The cat SAT on the mat"
    assert back.encode(line) == tok.encode(line)
    assert back.decode(back.encode(line)) == line.lower()
    assert back.vocab_size == tok.vocab_size and back.lowercase


# --------------------------------------------------------------------------- sentencepiece
@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_sentencepiece_trains_and_round_trips(tmp_path: Path, kind: str) -> None:
    lines = _text()
    tok = train_tokenizer(lines, kind, vocab_size=40)
    assert tok.vocab_size <= 60 and tok.token_to_id("<eos>") == EOS
    tok.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"tokenizer.json", "spm.model"}
    back = load_tokenizer(tmp_path)
    for line in lines[:20]:
        ids = back.encode(line)
        assert ids == tok.encode(line) and UNK not in ids
        assert back.decode(ids) == line
        assert len(back.pieces(line)) == len(ids)


# --------------------------------------------------------------------------- CLI
def test_cli_train_and_encode(tmp_path: Path) -> None:
    src = tmp_path / "train.txt"
    src.write_text("\n".join(_text()) + "\n", encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "tok"
    res = runner.invoke(cli, ["tokenizer", "train", "--file", str(src), "--kind", "word",
                              "--min-freq", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["kind"] == "word" and summary["files"] == ["tokenizer.json"]
    res = runner.invoke(cli, ["tokenizer", "encode", str(out), "the cat zebra", "--json"])
    assert res.exit_code == 0, res.output
    enc = json.loads(res.output)
    assert enc["pieces"] == ["the", "cat", "zebra"] and enc["unknown"] == ["zebra"]
    assert enc["ids"][2] == UNK
    res = runner.invoke(cli, ["tokenizer", "encode", str(out), "the cat"])
    assert res.exit_code == 0 and "the:" in res.output


def test_cli_train_sentencepiece_from_file(tmp_path: Path) -> None:
    src = tmp_path / "train.txt"
    src.write_text("\n".join(_text()) + "\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["tokenizer", "train", "--file", str(src), "--kind", "bpe",
                                   "--vocab-size", "40", "--out", str(tmp_path / "bpe")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bpe" / "spm.model").is_file()


def test_cli_train_from_imported_corpus_uses_its_only_split(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtool.data import corpora

    data = ("\n".join(f"{a}+{b}  _{a + b}" for a in range(9) for b in range(9)) + "\n").encode()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "pairs.txt").write_bytes(data)
    info = corpora.CorpusInfo(
        name="toy", task="toy", description="d", license="MIT", citation="c",
        format="underscore-pairs", splits={"all": "pairs.txt"},
        files={"pairs.txt": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}})
    monkeypatch.setattr(corpora, "catalog", lambda: {"toy": info})
    corpora.import_corpus("toy", tmp_path / "src")
    res = CliRunner().invoke(cli, ["tokenizer", "train", "--corpus", "toy", "--kind", "word",
                                   "--out", str(tmp_path / "tok"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["source"] == "toy all" and summary["lines"] == 2 * 81
    assert UNK not in load_tokenizer(tmp_path / "tok").encode("3+4 7")


def test_cli_train_needs_exactly_one_source(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["tokenizer", "train", "--kind", "word", "--out",
                                   str(tmp_path)])
    assert isinstance(res.exception, ConfigError)
    assert "--corpus" in res.exception.message


# --------------------------------------------------------------------------- cached stream
def _word_tok() -> WordTokenizer:
    return WordTokenizer.train(_text(), min_freq=2)


def test_cache_matches_encode_stream_and_second_call_hits(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.txt"
    # blank lines, CRLF, a BOM and a U+2028 line separator: read_lines' line rules
    path.write_bytes("\ufeffthe cat\r\n\n sat on\u2028the mat \n\nzebra hat\n".encode())
    tok = _word_tok()
    ref = encode_stream(read_lines(path), tok)
    first = cache.cached_token_stream(path, tok, tmp_path / "c")
    assert first.dtype == torch.long and torch.equal(first, ref)
    assert int((first == EOS).sum()) == len(read_lines(path))
    stored = list((tmp_path / "c" / "streams").glob("*.safetensors"))
    assert len(stored) == 1

    def no_tokenize(*args: object) -> None:
        raise AssertionError("cache miss")
    monkeypatch.setattr(cache, "_tokenize", no_tokenize)
    assert torch.equal(cache.cached_token_stream(path, tok, tmp_path / "c"), ref)


def test_cache_key_follows_file_and_tokenizer(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("the cat\nthe hat\n", encoding="utf-8")
    tok = _word_tok()
    key = cache.stream_key(path, tok)
    assert cache.stream_key(path, WordTokenizer.train(_text(seed=1))) != key
    path.write_text("the cat\nthe rat\n", encoding="utf-8")
    assert cache.stream_key(path, tok) != key


def test_cache_rebuilds_damaged_file_and_defaults_to_home(tmp_path: Path,
                                                          seqtool_home: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("the cat\n\nthe hat\n", encoding="utf-8")
    tok = _word_tok()
    first = cache.cached_token_stream(path, tok)
    (stored,) = (seqtool_home / "cache" / "streams").glob("*.safetensors")
    stored.write_bytes(b"garbage")
    assert torch.equal(cache.cached_token_stream(path, tok), first)


def test_cache_refuses_bad_files_clearly(tmp_path: Path) -> None:
    tok = _word_tok()
    with pytest.raises(DataError, match="not found"):
        cache.cached_token_stream(tmp_path / "none.txt", tok, tmp_path / "c")
    (tmp_path / "bin.txt").write_bytes(b"a\x00b\n")
    with pytest.raises(DataError, match="binary"):
        cache.cached_token_stream(tmp_path / "bin.txt", tok, tmp_path / "c")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        cache.cached_token_stream(tmp_path / "latin.txt", tok, tmp_path / "c")


@pytest.mark.corpus
def test_wikitext2_stream_keeps_blank_lines(corpora_dir: Path, tmp_path: Path) -> None:
    path = corpora_dir / "wikitext-2" / "train.txt"
    lines = read_lines(path)
    tok = train_tokenizer(lines, "word")
    stream = cache.cached_token_stream(path, tok, tmp_path / "c")
    assert stream.numel() == 2_088_628  # pytorch/examples reader: <eos> after every line
    assert int((stream == EOS).sum()) == len(lines) == 36_718
    assert torch.equal(stream, encode_stream(lines, tok))
