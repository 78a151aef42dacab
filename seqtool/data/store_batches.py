"""Training batches from a token store (data/store.py): length buckets from the
stored lengths, padded tensors gathered by offsets, and StoreParallelData, the
Trainer's data object over a store; for a seed the same batches as ParallelData
(tests/test_store.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from seqtool.data.store import TokenStore
from seqtool.data.tokenizer import EOS, PAD
from seqtool.errors import DataError

if TYPE_CHECKING:
    from torch import Tensor

    from seqtool.data.parallel import Pair


def store_bucket_batches(src_len: np.ndarray, tgt_len: np.ndarray, batch_size: int,
                         seed: int, epoch: int, pool_batches: int = 100
                         ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """buckets.bucket_batches on length arrays: (the epoch's order of pair indices,
    the batches as (start, end) slices of it, in training order). The same batches
    for the same seed and epoch: the same generator draws, and a stable sort by
    (target, source) length inside each pool."""
    import torch

    n = len(tgt_len)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g).numpy().astype(np.int32 if n < 2**31 else np.int64)
    pool = batch_size * pool_batches
    spans = []
    for i in range(0, n, pool):
        chunk = perm[i: i + pool]
        perm[i: i + pool] = chunk[np.lexsort((src_len[chunk], tgt_len[chunk]))]
        spans += [(k, min(k + batch_size, i + len(chunk)))
                  for k in range(i, i + len(chunk), batch_size)]
    order = torch.randperm(len(spans), generator=g).tolist()
    return perm, [spans[o] for o in order]


def gather_batch(store: TokenStore, idx: np.ndarray) -> dict[str, Tensor]:
    """parallel.pad_batch of the store's pairs `idx`, built from the offsets."""
    import torch

    out = {}
    for side, eos in (("src", 0), ("tgt", 1)):
        ids, off = store.array(f"{side}.ids"), store.array(f"{side}.off")
        starts, ends = off[idx], off[idx + 1]
        lengths = (ends - starts).astype(np.int64)
        arr = np.full((int(lengths.max()) + eos, len(idx)), PAD, np.int64)  # (S, B)
        for b, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            arr[: e - s, b] = ids[s:e]
            if eos:
                arr[e - s, b] = EOS
        out[side] = torch.from_numpy(arr)
        out[f"{side}_len"] = torch.from_numpy(lengths + eos)
    out["src_mask"] = out["src"] != PAD
    return {k: out[k] for k in ("src", "src_len", "src_mask", "tgt", "tgt_len")}


@dataclass
class StoreParallelData:
    """ParallelData with the training pairs in a TokenStore: the same Trainer
    interface and, for a seed, the same batches; validation pairs stay in memory."""

    store: TokenStore
    valid: list[Pair]
    batch_size: int
    seed: int = 1234
    pool_batches: int = 100
    eval_batch_size: int = 0  # 0 = batch_size
    metric: str = "valid_ppl"
    higher_is_better: bool = False
    rank: int = 0  # this process's share of the epoch's batches (shard)
    world: int = 1

    def __post_init__(self) -> None:
        if not len(self.store) or not self.valid:
            raise DataError("no training or no validation sentence pairs",
                            "check the parallel files")

    def steps_per_epoch(self) -> int:
        return -(-len(self.store) // self.batch_size) // self.world

    def shard(self, rank: int, world: int) -> StoreParallelData:
        """Rank `rank` of `world`'s share, as BucketedData.shard: batches of
        batch_size / world from the same seeded generator on every rank, dealt
        round-robin (the epoch's last len % world batches dropped)."""
        from seqtool.data.buckets import dealt_share

        return dealt_share(self, rank, world)

    def tokens_per_epoch(self) -> int:
        """Target tokens predicted per epoch (EOS included)."""
        return int(self.store.meta["tgt_tokens"]) + len(self.store)

    def batch_indices(self, epoch: int) -> Iterator[np.ndarray]:
        """Pair indices of each training batch of `epoch`, in order."""
        perm, spans = store_bucket_batches(self.store.array("src.len"),
                                           self.store.array("tgt.len"), self.batch_size,
                                           self.seed, epoch, self.pool_batches)
        self.store.release()
        from seqtool.distributed import deal

        for a, b in deal(spans, self.rank, self.world):
            yield perm[a:b]

    def train_batches(self, epoch: int) -> Iterator[dict[str, Tensor]]:
        for idx in self.batch_indices(epoch):
            batch = gather_batch(self.store, idx)
            self.store.release()
            yield batch

    def valid_batches(self) -> Iterator[dict[str, Tensor]]:
        from seqtool.data.parallel import batches_in_order

        return batches_in_order(self.valid, self.eval_batch_size or self.batch_size)
