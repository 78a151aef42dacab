"""`seqtool tokenizer train | encode`: build a tokenizer folder, inspect one.

A tokenizer folder holds tokenizer.json (plus spm.model for sentencepiece),
the same files a checkpoint carries, so `--tokenizer DIR` and checkpoints
load it alike.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from seqtool.errors import ConfigError

KINDS = ("word", "unigram", "bpe")
DEFAULT_SPM_VOCAB = 8000


def _training_lines(corpus: str | None, file: Path | None, split: str | None,
                    lang: str | None) -> tuple[list[str], str]:
    if (corpus is None) == (file is None):
        raise ConfigError("give exactly one of --corpus and --file",
                          "e.g. seqtool tokenizer train --corpus wikitext-2 --kind word --out DIR")
    if file is not None:
        from seqtool.data.text import read_lines

        return read_lines(file, "training file"), str(file)
    from seqtool.data.corpora import corpus_lines, get_info

    if split is None:  # toy and some dialogue corpora have one split, "all"
        splits = get_info(str(corpus)).splits
        split = "train" if "train" in splits or not splits else next(iter(splits))
    source = f"{corpus} {split}" + (f" ({lang})" if lang else "")
    return corpus_lines(str(corpus), split, lang), source


def train(out: Path, kind: str, corpus: str | None = None, file: Path | None = None,
          split: str | None = None, lang: str | None = None, vocab_size: int | None = None,
          min_freq: int = 1, lowercase: bool = False) -> dict[str, Any]:
    """Train a tokenizer on a corpus split or a text file and save it into OUT.

    word: vocab_size caps the vocabulary (None = no cap), min_freq drops rare
    words. unigram / bpe: vocab_size is the sentencepiece size (default 8000).
    """
    from seqtool.data.tokenizer import train_tokenizer

    if kind not in KINDS:
        raise ConfigError(f"unknown tokenizer kind {kind!r}", "choose " + ", ".join(KINDS))
    if vocab_size is not None and vocab_size < 5:
        raise ConfigError(f"vocabulary size {vocab_size} is too small",
                          "it must leave room beyond the 4 special tokens")
    if min_freq < 1:
        raise ConfigError(f"min_freq must be at least 1, got {min_freq}",
                          "use --min-freq 1 or more")
    lines, source = _training_lines(corpus, file, split, lang)
    start = time.perf_counter()
    if kind == "word":
        tok = train_tokenizer(lines, kind, min_freq=min_freq, max_vocab=vocab_size or 0,
                              lowercase=lowercase)
    else:
        tok = train_tokenizer(lines, kind, vocab_size=vocab_size or DEFAULT_SPM_VOCAB,
                              lowercase=lowercase)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out)
    return {"out": str(out), "kind": kind, "vocab_size": tok.vocab_size, "source": source,
            "lines": len(lines), "lowercase": lowercase,
            "seconds": round(time.perf_counter() - start, 3),
            "files": sorted(p.name for p in out.iterdir() if p.is_file())}


def encode(folder: Path, text: str) -> dict[str, Any]:
    """Pieces and ids of TEXT under the tokenizer saved in FOLDER."""
    from seqtool.data.tokenizer import UNK, load_tokenizer

    tok = load_tokenizer(folder)
    pieces = tok.pieces(text)
    ids = tok.encode(text)
    unknown = ([p for p, i in zip(pieces, ids, strict=True) if i == UNK]
               if len(pieces) == len(ids) else [])
    return {"tokenizer": str(folder), "kind": tok.kind, "vocab_size": tok.vocab_size,
            "text": text, "pieces": pieces, "ids": ids, "unknown": unknown,
            "decoded": tok.decode(ids)}
