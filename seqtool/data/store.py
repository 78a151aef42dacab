"""Corpora larger than memory: parallel text tokenised once into an on-disk token
store, memory-mapped at training time.

Layout of a store, $SEQTOOL_HOME/cache/store/<key>/ (flat little-endian arrays):

    src.ids  int32   every kept pair's source ids, one after the other
    src.off  int64   n + 1 offsets: pair i is src.ids[off[i]:off[i + 1]]
    tgt.ids, tgt.off the same for the targets (without EOS)
    src.len, tgt.len int32 lengths (n), for bucketing
    meta.json        key, pair and token counts, pairs skipped or dropped

Why flat arrays and not Arrow (`datasets`): a pair is two slices found by two
offsets, so a batch is built from lengths + offsets with numpy alone; nothing
needs the ~1 s `datasets` import, its own cache folder or a per-row Python
object, and the files are the same bytes `np.memmap` maps.

The key is sha256 over the store version, the sha256 of both training files
(read in 1 MiB chunks) and the fingerprints of both tokenizers: a changed file
or another tokenizer gives another key, so a store is rebuilt, never reused by
mistake. It is written into a temporary folder next to its place and moved
there with os.replace only when complete; a failed build (disk full) removes
the temporary folder, so a half store is never used.

Tokenisation runs in `workers` processes (spawned, so they hold only the
tokenizers), fed chunks of pairs with a bounded number in flight: memory stays
flat whatever the corpus size. The files are read by data/streams.py; training
batches come from data/store_batches.py (the ones ParallelData builds for the
same seed, tests/test_store.py).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqtool.data.chunks import chunked
from seqtool.data.streams import ParallelFiles, iter_lines, train_files
from seqtool.data.tokenizer import Tokenizer
from seqtool.errors import DataError

if TYPE_CHECKING:
    from seqtool.config import TokenizerConfig
    from seqtool.data.parallel import Pair

__all__ = ["ParallelFiles", "TokenStore", "iter_lines", "token_store", "train_files",
           "train_pair_tokenizers"]  # the reading side is data/streams.py's, named here too

STORE_VERSION = "1"  # bump when the layout or a tokenizer's encoding changes
CHUNK_PAIRS = 8192  # pairs per task sent to a worker
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


# --------------------------------------------------------------------------- tokenizers
def train_pair_tokenizers(tc: TokenizerConfig, shared: bool, files: ParallelFiles,
                          seed: int = 1234, workers: int = 0) -> tuple[Tokenizer, Tokenizer]:
    """(source, target) tokenizers trained on streamed pairs: word level counts every
    line, in `workers` processes (the vocabulary is exactly the in-memory one);
    sentencepiece trains on at most tc.sample_size lines, all of them in file order
    (as today) when the corpus has no more, else a uniform sample (reservoir, seeded)."""
    from seqtool.data.tokenizer import SentencePieceTokenizer, WordTokenizer

    if tc.kind == "word":
        src_c: Counter[str] = Counter()
        tgt_c = src_c if shared else Counter()
        low = tc.lowercase
        count = functools.partial(count_chunk, lowercase=low)
        for a, b in parallel_map(count, chunked(files.pairs(), CHUNK_PAIRS), (), workers):
            src_c.update(a)
            tgt_c.update(b)
        src = WordTokenizer.from_counts(src_c, tc.min_freq, tc.max_vocab, low)
        return (src, src) if shared else \
            (src, WordTokenizer.from_counts(tgt_c, tc.min_freq, tc.max_vocab, low))
    sides = (0, 0) if shared else (0, 1)
    samples = sample_pair_lines(files, tc.sample_size, sides, seed)
    toks = [SentencePieceTokenizer.train(lines, tc.vocab_size, tc.kind, tc.lowercase)
            for lines in samples]
    return (toks[0], toks[0]) if shared else (toks[0], toks[1])


def count_chunk(chunk: list[tuple[str, str]], lowercase: bool = False
                ) -> tuple[Counter[str], Counter[str]]:
    """Word counts of a chunk's sources and targets."""
    src: Counter[str] = Counter()
    tgt: Counter[str] = Counter()
    for s, t in chunk:
        src.update((s.lower() if lowercase else s).split())
        tgt.update((t.lower() if lowercase else t).split())
    return src, tgt


def sample_pair_lines(files: ParallelFiles, k: int, sides: tuple[int, int], seed: int
                      ) -> list[list[str]]:
    """At most k lines per pool (sides[0] is the source's pool, sides[1] the target's):
    every line in order (sources before targets) when a pool has no more than k,
    else a uniform sample (Algorithm R)."""
    n_pools = max(sides) + 1
    pools: list[list[tuple[int, int, str]]] = [[] for _ in range(n_pools)]
    seen = [0] * n_pools
    rng = random.Random(seed)
    for i, pair in enumerate(files.pairs()):
        for side, line in enumerate(pair):
            p = sides[side]
            item = (side, i, line)
            if seen[p] < k:
                pools[p].append(item)
            else:
                j = rng.randrange(seen[p] + 1)
                if j < k:
                    pools[p][j] = item
            seen[p] += 1
    return [[line for _, _, line in sorted(pool)] for pool in pools]


# --------------------------------------------------------------------------- the store
def tokenizer_files(tokenizer: Tokenizer) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(Path(tmp))
        return {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir())}


def store_key(files: ParallelFiles, src_tok: Tokenizer, tgt_tok: Tokenizer) -> str:
    h = hashlib.sha256(f"store v{STORE_VERSION}:{files.content_hash()}".encode())
    for tok in (src_tok, tgt_tok):
        for name, data in tokenizer_files(tok).items():
            h.update(b"\0" + name.encode() + b"\0" + data)
        h.update(b"\1")
    return h.hexdigest()


def default_store_dir() -> Path:
    from seqtool.data.cache import default_cache_dir

    return default_cache_dir() / "store"


_worker_toks: tuple[Tokenizer, ...] = ()


def _load_tokenizers(blobs: tuple[dict[str, bytes], ...]) -> None:
    global _worker_toks
    from seqtool.data.tokenizer import load_tokenizer

    toks = []
    for blob in blobs:
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in blob.items():
                (Path(tmp) / name).write_bytes(data)
            toks.append(load_tokenizer(Path(tmp)))
    _worker_toks = tuple(toks)


def _call_with_worker_tokenizers(fn: Callable[..., Any], chunk: Any) -> Any:
    return fn(chunk, *_worker_toks)


def parallel_map(fn: Callable[..., Any], chunks: Iterator[Any], toks: tuple[Tokenizer, ...],
                 workers: int = 0) -> Iterator[Any]:
    """fn(chunk, *toks) of every chunk, in order. With more than one worker, in
    spawned processes that load the tokenizers once (from their saved files); at
    most 2 * workers + 1 chunks are in flight, so memory stays flat however many
    chunks there are. `fn` must be a module-level function."""
    workers = workers or default_workers()
    if workers <= 1:
        for chunk in chunks:
            yield fn(chunk, *toks)
        return
    import multiprocessing

    blobs = tuple(tokenizer_files(t) for t in toks)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_load_tokenizers, initargs=(blobs,)) as pool:
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_call_with_worker_tokenizers, (fn, chunk)))
            if len(pending) > 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def encode_chunk(chunk: list[tuple[str, str]], src_tok: Tokenizer, tgt_tok: Tokenizer
                 ) -> tuple[np.ndarray, ...]:
    """(src ids, src lengths, tgt ids, tgt lengths) of a chunk's pairs, int32; a pair
    whose source or target encodes to nothing is dropped (as encode_pairs does)."""
    s_ids: list[int] = []
    t_ids: list[int] = []
    s_len: list[int] = []
    t_len: list[int] = []
    for s, t in chunk:
        a, b = src_tok.encode(s), tgt_tok.encode(t)
        if a and b:
            s_ids += a
            t_ids += b
            s_len.append(len(a))
            t_len.append(len(b))
    i32 = np.int32
    return (np.array(s_ids, i32), np.array(s_len, i32), np.array(t_ids, i32),
            np.array(t_len, i32))


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in _DISK_FULL


def disk_full_error(where: Path) -> DataError:
    return DataError(f"no space left while building the token store in {where}",
                     "free disk space, or set SEQTOOL_HOME to a disk with room "
                     "(the store needs about 8 bytes per token)")


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


@dataclass
class TokenStore:
    """A built store, memory-mapped: pair i's ids are slices of src/tgt ids."""

    path: Path
    meta: dict[str, Any]
    built: bool = False  # built by this call (False: found and reused)
    seconds: float = 0.0
    _maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name, dtype in (("src.ids", np.int32), ("tgt.ids", np.int32), ("src.off", np.int64),
                            ("tgt.off", np.int64), ("src.len", np.int32), ("tgt.len", np.int32)):
            self._maps[name] = np.memmap(self.path / name, dtype=dtype, mode="r")

    def __len__(self) -> int:
        return int(self.meta["pairs"])

    def array(self, name: str) -> np.ndarray:
        return self._maps[name]

    def release(self) -> None:
        """Unmap the pages read so far (they stay in the page cache): see release_pages."""
        for arr in self._maps.values():
            release_pages(arr)

    def pair(self, i: int) -> Pair:
        so, to = self._maps["src.off"], self._maps["tgt.off"]
        return (self._maps["src.ids"][so[i]: so[i + 1]].tolist(),
                self._maps["tgt.ids"][to[i]: to[i + 1]].tolist())


def release_pages(arr: np.ndarray) -> None:
    """Drop the pages of a memory-mapped array from this process (MADV_DONTNEED; a
    later read maps them again from the page cache). Without it, every page a batch
    touches stays mapped, and the kernel maps 16 neighbours with each (fault-around),
    so the resident set would grow towards the store's size over an epoch."""
    import mmap

    mm = getattr(arr, "_mmap", None)  # np.memmap's mapping
    if isinstance(mm, mmap.mmap) and hasattr(mm, "madvise"):
        mm.madvise(mmap.MADV_DONTNEED)


def _open(path: Path, key: str) -> TokenStore | None:
    try:
        meta = json.loads((path / "meta.json").read_text("utf-8"))
        if meta.get("key") != key:
            return None
        store = TokenStore(path, meta)
        n = int(meta["pairs"])
        if len(store.array("src.off")) != n + 1 or len(store.array("tgt.len")) != n:
            return None
        return store
    except (OSError, ValueError, KeyError, TypeError):
        return None  # damaged: rebuild


def token_store(files: ParallelFiles, src_tok: Tokenizer, tgt_tok: Tokenizer,
                root: str | Path | None = None, workers: int = 0,
                progress: Callable[[int], None] | None = None) -> TokenStore:
    """The store of `files` encoded by the two tokenizers: reused when one with the
    same key exists, else built (in `workers` processes, 0 = one per core)."""
    import time

    key = store_key(files, src_tok, tgt_tok)
    base = Path(root) if root is not None else default_store_dir()
    target = base / key
    found = _open(target, key)
    if found is not None:
        return found
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)  # damaged
    start = time.perf_counter()
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.tmp-", dir=base))
    try:
        workers = workers or default_workers()
        meta = _write(tmp, files, (src_tok, tgt_tok), workers, progress)
        meta["key"] = key
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), "utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same store first
            if _open(target, key) is None:
                raise
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(base) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    store = _open(target, key)
    assert store is not None, target
    store.built, store.seconds = True, time.perf_counter() - start
    return store


def _write(tmp: Path, files: ParallelFiles, toks: tuple[Tokenizer, Tokenizer], workers: int,
           progress: Callable[[int], None] | None) -> dict[str, Any]:
    counts: dict[str, int] = {}
    names = ("src.ids", "src.len", "tgt.ids", "tgt.len")
    handles = [open(tmp / n, "wb") for n in names]
    n = src_tokens = tgt_tokens = max_src = max_tgt = 0
    try:
        chunks = chunked(files.pairs(counts), CHUNK_PAIRS)
        for arrays in parallel_map(encode_chunk, chunks, toks, workers):
            for fh, arr in zip(handles, arrays, strict=True):
                fh.write(arr.tobytes())
            n += len(arrays[1])
            if len(arrays[1]):
                src_tokens += int(arrays[1].sum())
                tgt_tokens += int(arrays[3].sum())
                max_src, max_tgt = max(max_src, int(arrays[1].max())), \
                    max(max_tgt, int(arrays[3].max()))
            if progress is not None:
                progress(counts["pairs"] + counts["skipped"])
    finally:
        for fh in handles:
            fh.close()
    if not n:
        raise DataError(f"no sentence pairs in {files.src} / {files.tgt} encode to tokens",
                        "check the files and the tokenizer")
    for side in ("src", "tgt"):  # offsets, written in pieces of 1M lengths
        lengths = np.memmap(tmp / f"{side}.len", dtype=np.int32, mode="r")
        with open(tmp / f"{side}.off", "wb") as fh:
            total = 0
            fh.write(np.zeros(1, np.int64).tobytes())
            for k in range(0, n, 1 << 20):
                off = np.cumsum(lengths[k: k + (1 << 20)], dtype=np.int64) + total
                fh.write(off.tobytes())
                total = int(off[-1])
        del lengths
    return {"version": STORE_VERSION, "src": str(files.src), "tgt": str(files.tgt),
            "pairs": n, "skipped_empty": counts["skipped"],
            "dropped_unencodable": counts["pairs"] - n, "src_tokens": src_tokens,
            "tgt_tokens": tgt_tokens, "max_src_len": max_src, "max_tgt_len": max_tgt,
            "workers": workers}
