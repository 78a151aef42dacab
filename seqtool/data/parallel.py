"""Parallel text for translation: two line-aligned files, encoded, and cut into
length-bucketed, padded, time-major batches with masks.

Batches (PAD = 0; see models/seq2seq.py):
    src (S, B), src_len (B,), src_mask (S, B) True on real tokens,
    tgt (T, B) target ids + EOS, tgt_len (B,) (EOS counted).

Training batches are bucketed by length, target first (data/buckets.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from seqtool.data.buckets import BucketedData
from seqtool.data.text import read_lines
from seqtool.data.tokenizer import EOS, PAD, Tokenizer
from seqtool.config import DataConfig
from seqtool.errors import ConfigError, CorpusError, DataError

Pair = tuple[list[int], list[int]]  # source ids, target ids (without EOS)


def read_parallel(src_path: str | Path, tgt_path: str | Path
                  ) -> tuple[list[str], list[str], int]:
    """The aligned lines of two files, pairs with an empty side dropped.
    Returns (source lines, target lines, number of pairs skipped)."""
    return align_lines(read_lines(src_path, "source file"), read_lines(tgt_path, "target file"),
                       str(src_path), str(tgt_path))


def align_lines(src: list[str], tgt: list[str], src_name: str, tgt_name: str
                ) -> tuple[list[str], list[str], int]:
    """Check that two sides have as many lines (DataError naming both and their
    counts) and drop the pairs with an empty side; returns them and the count dropped."""
    if len(src) != len(tgt):
        raise DataError(f"parallel files are not aligned: {src_name} has {len(src)} lines, "
                        f"{tgt_name} has {len(tgt)}",
                        "each source line needs its translation on the same line of the "
                        "target file")
    keep = [i for i, (s, t) in enumerate(zip(src, tgt, strict=False)) if s.strip() and t.strip()]
    if not keep:
        raise DataError(f"no sentence pairs in {src_name} / {tgt_name} (every pair has an "
                        "empty side)", "give files with text on the same lines")
    return [src[i] for i in keep], [tgt[i] for i in keep], len(src) - len(keep)


def encode_with_references(src_lines: Sequence[str], tgt_lines: Sequence[str],
                           src_tok: Tokenizer, tgt_tok: Tokenizer
                           ) -> tuple[list[Pair], list[str], int]:
    """Token id pairs, the target text of each kept pair, and the number dropped
    (a pair whose source or target encodes to nothing)."""
    pairs, refs = [], []
    for s, t in zip(src_lines, tgt_lines, strict=False):
        s_ids, t_ids = src_tok.encode(s), tgt_tok.encode(t)
        if s_ids and t_ids:
            pairs.append((s_ids, t_ids))
            refs.append(t)
    return pairs, refs, len(src_lines) - len(pairs)


def encode_pairs(src_lines: Sequence[str], tgt_lines: Sequence[str], src_tok: Tokenizer,
                 tgt_tok: Tokenizer) -> list[Pair]:
    """Token ids of each pair; pairs whose source or target encodes to nothing are dropped."""
    return encode_with_references(src_lines, tgt_lines, src_tok, tgt_tok)[0]


# --------------------------------------------------------------------------- corpora
PARALLEL_FORMATS = ("parallel", "parallel-gz")


def corpus_split(name: str, split: str) -> str:
    """A catalog split name, also accepting its file name (multi30k: test_2016_flickr)."""
    from seqtool.data.corpora import get_info

    info = get_info(name)
    if split in info.splits:
        return split
    aliases = {str(p).split("/")[-1].split(".{lang}")[0]: k for k, p in info.splits.items()}
    if split in aliases:
        return aliases[split]
    raise CorpusError(f"{name} has no split {split!r}",
                      "splits: " + ", ".join(f"{k} ({a})" if a != k else k
                                             for a, k in aliases.items()))


def corpus_pairs(name: str, split: str, src: str, tgt: str) -> tuple[list[str], list[str], int]:
    """Aligned source/target lines of a parallel corpus split (empty pairs dropped),
    and how many were dropped."""
    from seqtool.data.corpora import corpus_lines, info_of_kind

    info = info_of_kind(name, PARALLEL_FORMATS, "parallel", "translation corpora",
                        "or give plain files with --train-src/--train-tgt/--valid-src/"
                        "--valid-tgt")
    langs = ", ".join(info.languages)
    if not src or not tgt:
        raise ConfigError(f"{name} needs a source and a target language",
                          f"give --src and --tgt (languages: {langs})")
    for lang in (src, tgt):
        if lang not in info.languages:
            raise CorpusError(f"{name} has no language {lang!r}", f"languages: {langs}")
    if src == tgt:
        raise ConfigError(f"source and target are both {src!r}", f"languages: {langs}")
    split = corpus_split(name, split)
    return align_lines(corpus_lines(name, split, src), corpus_lines(name, split, tgt),
                       f"{name} {split}.{src}", f"{name} {split}.{tgt}")


def translation_split(data: DataConfig, split: str) -> tuple[list[str], list[str], int]:
    """Aligned (source, target) lines of `split` from plain files (--train-src ...) or
    the corpus, and how many pairs with an empty side were skipped."""
    d = data
    files = {"train": (d.train_src, d.train_tgt), "valid": (d.valid_src, d.valid_tgt),
             "test": (d.test_src, d.test_tgt)}[split]
    if any(files):
        if not all(files):
            raise ConfigError(f"give both --{split}-src and --{split}-tgt",
                              "each source file needs its line-aligned translation")
        return read_parallel(*files)
    if d.corpus:
        return corpus_pairs(d.corpus, split, d.src_lang, d.tgt_lang)
    raise ConfigError(f"no {split} data", "give --corpus NAME --src LANG --tgt LANG, or "
                      "--train-src/--train-tgt and --valid-src/--valid-tgt")


def pad_batch(pairs: Sequence[Pair]) -> dict[str, Tensor]:
    """Pairs -> a padded, time-major batch with lengths and the source mask."""
    from torch.nn.utils.rnn import pad_sequence

    src = pad_sequence([torch.tensor(s, dtype=torch.long) for s, _ in pairs],
                       padding_value=PAD)  # (S, B)
    tgt = pad_sequence([torch.tensor(t + [EOS], dtype=torch.long) for _, t in pairs],
                       padding_value=PAD)  # (T, B)
    return {"src": src, "src_len": torch.tensor([len(s) for s, _ in pairs]),
            "src_mask": src != PAD, "tgt": tgt,
            "tgt_len": torch.tensor([len(t) + 1 for _, t in pairs])}


class ParallelData(BucketedData[Pair]):
    """Training and validation pairs with the Trainer's data interface."""

    empty_error = ("no training or no validation sentence pairs", "check the parallel files")

    @staticmethod
    def lengths(pair: Pair) -> tuple[int, int]:
        """(target, source) length: batches are sorted by target length first, since
        the decoder runs one step per target position and costs several times the
        encoder (Multi30k, 64 pairs: 14.4 decoder steps a batch instead of 16.2)."""
        return len(pair[1]), len(pair[0])

    @staticmethod
    def pad(pairs: Sequence[Pair]) -> dict[str, Tensor]:
        return pad_batch(pairs)

    @staticmethod
    def ordered(pairs: Sequence[Pair], batch_size: int) -> Iterator[dict[str, Tensor]]:
        return batches_in_order(pairs, batch_size)

    def tokens_per_epoch(self) -> int:
        """Target tokens predicted per epoch (EOS included)."""
        return sum(t + 1 for t, _ in self._lengths)


def batches_in_order(pairs: Sequence[Pair], batch_size: int) -> Iterator[dict[str, Tensor]]:
    """Evaluation batches: sorted by length (little padding), then by position."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]), len(pairs[i][1]), i))
    for k in range(0, len(order), batch_size):
        yield pad_batch([pairs[i] for i in order[k: k + batch_size]])


def source_batches(sources: Sequence[list[int]], batch_size: int
                   ) -> Iterator[tuple[list[int], dict[str, Tensor]]]:
    """Translation input: (original positions, batch) sorted by length; the caller
    puts the outputs back in input order with the positions. An empty source is
    encoded as a lone EOS (the encoder needs one position)."""
    from torch.nn.utils.rnn import pad_sequence

    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), i))
    for k in range(0, len(order), batch_size):
        idx = order[k: k + batch_size]
        src = pad_sequence([torch.tensor(sources[i] or [EOS], dtype=torch.long) for i in idx],
                           padding_value=PAD)  # (S, B)
        lengths = torch.tensor([max(1, len(sources[i])) for i in idx])
        yield idx, {"src": src, "src_len": lengths, "src_mask": src != PAD}
