"""Language-model text larger than memory: the token stream of a training file as
a flat int32 array on disk, memory-mapped, cut into the same (T, B) windows as
LMData without building the batchified int64 tensor.

    $SEQTOOL_HOME/cache/streams/<key>.int32   every line's ids followed by <eos>
    $SEQTOOL_HOME/cache/streams/<key>.json    the key and the token count

The key is cache.stream_key (sha256 of the file, read in 1 MiB chunks, and the
tokenizer's fingerprint) under this layout's own version: another file or
tokenizer is another key. Lines are read as a stream (streams.iter_lines, the
lines read_lines gives), tokenised in worker processes in chunks, and written
to a temporary file that os.replace puts in place when complete; a failed
(disk full) build leaves nothing. The ids equal encode_stream(read_lines(path))
(tests/test_store.py).
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqtool.data.chunks import chunked
from seqtool.data.store import (CHUNK_PAIRS, disk_full_error, is_disk_full, parallel_map,
                                release_pages)
from seqtool.data.streams import iter_lines
from seqtool.data.tokenizer import EOS, Tokenizer
from seqtool.errors import DataError

if TYPE_CHECKING:
    from torch import Tensor

    from seqtool.config import TokenizerConfig

LM_STORE_VERSION = "1"


def count_lines(chunk: list[str], lowercase: bool = False) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in chunk:
        counts.update((line.lower() if lowercase else line).split())
    return counts


def train_text_tokenizer(tc: TokenizerConfig, path: Path, seed: int = 1234, workers: int = 0
                         ) -> Tokenizer:
    """A tokenizer trained on a streamed text file: word level counts every line
    (in `workers` processes),
    sentencepiece trains on at most tc.sample_size lines (all of them, in order,
    when the file has no more; else a seeded uniform sample)."""
    from seqtool.data.tokenizer import WordTokenizer, train_tokenizer

    if tc.kind == "word":
        counts: Counter[str] = Counter()
        count = functools.partial(count_lines, lowercase=tc.lowercase)
        lines = chunked(iter_lines(path, what="train file"), CHUNK_PAIRS)
        for c in parallel_map(count, lines, (), workers):
            counts.update(c)
        return WordTokenizer.from_counts(counts, tc.min_freq, tc.max_vocab, tc.lowercase)
    rng = random.Random(seed)
    sample: list[tuple[int, str]] = []
    for i, line in enumerate(iter_lines(path, what="train file")):
        if i < tc.sample_size:
            sample.append((i, line))
        else:
            j = rng.randrange(i + 1)
            if j < tc.sample_size:
                sample[j] = (i, line)
    return train_tokenizer([line for _, line in sorted(sample)], tc.kind, tc.vocab_size,
                           tc.min_freq, tc.max_vocab, tc.lowercase)


def encode_lines(chunk: list[str], tok: Tokenizer) -> np.ndarray:
    """Each line's ids followed by <eos>, as one int32 array."""
    ids: list[int] = []
    for line in chunk:
        ids += tok.encode(line)
        ids.append(EOS)
    return np.array(ids, np.int32)


def stream_store(path: str | Path, tokenizer: Tokenizer, root: str | Path | None = None,
                 workers: int = 0) -> np.ndarray:
    """The LM token stream of `path` as a read-only int32 memmap, built once."""
    import hashlib

    from seqtool.data.cache import default_cache_dir, stream_key

    path = Path(path)
    if not path.is_file():
        from seqtool.data.text import read_lines

        read_lines(path, "text file")  # the precise error
    key = hashlib.sha256(f"lm v{LM_STORE_VERSION}:{stream_key(path, tokenizer)}"
                         .encode()).hexdigest()
    base = Path(root) if root is not None else default_cache_dir() / "streams"
    ids_file, meta_file = base / f"{key}.int32", base / f"{key}.json"
    found = _open(ids_file, meta_file, key)
    if found is not None:
        return found
    base.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{key[:16]}.tmp-", dir=base)
    tmp = Path(tmp_name)
    try:
        tokens = 0
        with os.fdopen(fd, "wb") as fh:
            lines = chunked(iter_lines(path, what="text file"), CHUNK_PAIRS)
            for arr in parallel_map(encode_lines, lines, (tokenizer,), workers):
                fh.write(arr.tobytes())
                tokens += len(arr)
        os.replace(tmp, ids_file)
        meta_file.write_text(json.dumps({"key": key, "tokens": tokens, "source": str(path)}),
                             "utf-8")
    except OSError as exc:
        if is_disk_full(exc):
            ids_file.unlink(missing_ok=True)
            meta_file.unlink(missing_ok=True)
            raise disk_full_error(base) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    stream = _open(ids_file, meta_file, key)
    assert stream is not None, ids_file
    return stream


def _open(ids_file: Path, meta_file: Path, key: str) -> np.ndarray | None:
    try:
        meta = json.loads(meta_file.read_text("utf-8"))
        if meta.get("key") != key or ids_file.stat().st_size != 4 * int(meta["tokens"]):
            return None
        return np.memmap(ids_file, dtype=np.int32, mode="r")
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class MemmapLMData:
    """LMData on a memory-mapped int32 training stream: the same windows, gathered
    from the stream (column b of batchify's (N // B, B) matrix is the stream's
    b-th slice of N // B tokens); the validation stream is a tensor, as in LMData."""

    train: np.ndarray  # (N,) int32
    valid: Tensor  # (M,)
    batch_size: int
    bptt: int
    eval_batch_size: int = 10
    metric: str = "valid_ppl"
    higher_is_better: bool = False

    def __post_init__(self) -> None:
        from seqtool.data.lm import batchify

        self._rows = len(self.train) // self.batch_size
        if self._rows < 2:
            raise DataError(f"too little text: {len(self.train)} tokens for batch size "
                            f"{self.batch_size}", "use more text or a smaller train.batch_size")
        rows = min(self.eval_batch_size, max(1, self.valid.numel() // 2))
        self._valid = batchify(self.valid, rows)
        self._starts = np.arange(self.batch_size, dtype=np.int64) * self._rows  # (B,)

    def steps_per_epoch(self) -> int:
        return math.ceil((self._rows - 1) / self.bptt)

    def tokens_per_epoch(self) -> int:
        return (self._rows - 1) * self.batch_size

    def shard(self, rank: int, world: int) -> MemmapLMData:
        """As LMData.shard: rank `rank`'s contiguous slice of the stream (a view of the
        memory map, nothing copied), read with batch_size / world columns."""
        import dataclasses

        from seqtool.distributed import contiguous_slice, per_rank_batch

        batch = per_rank_batch(self.batch_size, world)
        part = self.train[contiguous_slice(len(self.train), rank, world, batch)]
        return dataclasses.replace(self, train=part, batch_size=batch)

    def train_batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        import torch

        for i in range(0, self._rows - 1, self.bptt):
            n = min(self.bptt, self._rows - 1 - i)
            rows = np.arange(i, i + n + 1, dtype=np.int64)[:, None] + self._starts  # (T+1, B)
            window = torch.from_numpy(self.train[rows].astype(np.int64))
            release_pages(self.train)  # keep the resident set flat (store.release_pages)
            yield {"input": window[:-1], "target": window[1:]}

    def valid_batches(self) -> Iterator[dict[str, Tensor]]:
        from seqtool.data.lm import LMData

        return LMData.windows(self._valid, self.bptt)
