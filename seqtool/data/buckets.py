"""Length-bucketed training batches, shared by the translation pairs and the
dialogue windows.

Bucketing (as OpenNMT-py's pools): each epoch the examples are shuffled, cut
into pools of `pool_batches` batches, sorted by length inside a pool (little
padding), cut into batches, and the batches are shuffled. Everything comes
from one generator seeded with (seed, epoch), so an epoch's batches are the
same every time it is built and a resumed run sees exactly the batches it
would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from seqtool.errors import DataError

E = TypeVar("E")


def bucket_batches(lengths: Sequence[tuple[int, int]], batch_size: int, seed: int, epoch: int,
                   pool_batches: int = 100) -> list[list[int]]:
    """Index lists of one epoch's batches: shuffled pools sorted by (source, target)
    length, batches in shuffled order. Deterministic for a given seed and epoch;
    only the last pool can hold a batch smaller than batch_size."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    pool = batch_size * pool_batches
    batches = []
    for i in range(0, len(perm), pool):
        chunk = sorted(perm[i: i + pool], key=lambda j: lengths[j])
        batches += [chunk[k: k + batch_size] for k in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[o] for o in order]


@dataclass
class BucketedData(Generic[E]):
    """Training and validation examples with the Trainer's data interface.
    A subclass says how long an example is (`lengths`), how examples become a
    padded batch (`pad`) and how validation is batched (`ordered`)."""

    train: list[E]
    valid: list[E]
    batch_size: int
    seed: int = 1234
    pool_batches: int = 100
    eval_batch_size: int = 0  # 0 = batch_size
    metric: str = "valid_ppl"
    higher_is_better: bool = False
    rank: int = 0  # this process's share of the epoch's batches (shard)
    world: int = 1
    _lengths: list[tuple[int, int]] = field(default_factory=list, init=False, repr=False)

    empty_error = ("no training or no validation examples", "check the data")

    def __post_init__(self) -> None:
        if not self.train or not self.valid:
            raise DataError(*self.empty_error)
        self._lengths = [self.lengths(e) for e in self.train]

    @staticmethod
    def lengths(example: Any) -> tuple[int, int]:
        raise NotImplementedError

    @staticmethod
    def pad(examples: Sequence[Any]) -> dict[str, Tensor]:
        raise NotImplementedError

    @staticmethod
    def ordered(examples: Sequence[Any], batch_size: int) -> Iterator[dict[str, Tensor]]:
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.batch_size) // self.world

    def train_batches(self, epoch: int) -> Iterator[dict[str, Tensor]]:
        from seqtool.distributed import deal

        batches = bucket_batches(self._lengths, self.batch_size, self.seed, epoch,
                                 self.pool_batches)
        for idx in deal(batches, self.rank, self.world):
            yield self.pad([self.train[i] for i in idx])

    def shard(self, rank: int, world: int) -> BucketedData[E]:
        """The same data for rank `rank` of `world`: batches of batch_size / world, from
        the same seeded generator on every rank, dealt round-robin (the epoch's last
        len % world batches dropped; seqtool/distributed.py). Validation keeps the
        global batch size."""
        return dealt_share(self, rank, world)

    def valid_batches(self) -> Iterator[dict[str, Tensor]]:
        return self.ordered(self.valid, self.eval_batch_size or self.batch_size)


def dealt_share(data: Any, rank: int, world: int) -> Any:
    """`data` (a dataclass with batch_size, eval_batch_size, rank and world) for rank
    `rank` of `world`: batches of batch_size / world, dealt round-robin by its
    train_batches; validation keeps the global batch size."""
    import dataclasses

    from seqtool.distributed import per_rank_batch

    return dataclasses.replace(data, batch_size=per_rank_batch(data.batch_size, world),
                               eval_batch_size=data.eval_batch_size or data.batch_size,
                               rank=rank, world=world)
