"""Language-model data: a token stream cut into (B, T) windows for truncated BPTT."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from seqtool.data.tokenizer import EOS, Tokenizer
from seqtool.errors import DataError


def encode_stream(lines: list[str], tokenizer: Tokenizer) -> Tensor:
    """Every line (blank ones too) as its tokens followed by <eos>, as in the
    standard PTB / WikiText benchmarks. Returns a 1-D int64 tensor."""
    ids: list[int] = []
    for line in lines:
        ids.extend(tokenizer.encode(line))
        ids.append(EOS)
    return torch.tensor(ids, dtype=torch.long)


def batchify(stream: Tensor, batch_size: int) -> Tensor:
    """(N,) -> (N // B, B): B contiguous streams side by side, time-major."""
    n = stream.numel() // batch_size
    if n < 2:
        raise DataError(f"too little text: {stream.numel()} tokens for batch size {batch_size}",
                        "use more text or a smaller train.batch_size")
    return stream[: n * batch_size].view(batch_size, n).t().contiguous()


@dataclass
class LMData:
    """Train and validation streams, windows of `bptt` tokens."""

    train: Tensor  # (N,)
    valid: Tensor  # (M,)
    batch_size: int
    bptt: int
    eval_batch_size: int = 10
    metric: str = "valid_ppl"
    higher_is_better: bool = False

    def __post_init__(self) -> None:
        self._train = batchify(self.train, self.batch_size)
        rows = min(self.eval_batch_size, max(1, self.valid.numel() // 2))
        self._valid = batchify(self.valid, rows)

    def steps_per_epoch(self) -> int:
        return math.ceil((self._train.shape[0] - 1) / self.bptt)

    def tokens_per_epoch(self) -> int:
        return (self._train.shape[0] - 1) * self.batch_size

    @staticmethod
    def windows(data: Tensor, bptt: int) -> Iterator[dict[str, Tensor]]:
        for i in range(0, data.shape[0] - 1, bptt):
            n = min(bptt, data.shape[0] - 1 - i)
            yield {"input": data[i: i + n], "target": data[i + 1: i + 1 + n]}

    def train_batches(self, epoch: int) -> Iterator[dict[str, Tensor]]:
        return self.windows(self._train, self.bptt)

    def shard(self, rank: int, world: int) -> LMData:
        """Rank `rank`'s contiguous slice of the training stream, read with batch_size
        / world columns (seqtool/distributed.py): the ranks' columns together are
        those of one process with batch_size. Validation stays whole (rank 0 runs it)."""
        import dataclasses

        from seqtool.distributed import contiguous_slice, per_rank_batch

        batch = per_rank_batch(self.batch_size, world)
        part = self.train[contiguous_slice(self.train.numel(), rank, world, batch)]
        return dataclasses.replace(self, train=part, batch_size=batch,
                                   eval_batch_size=self.eval_batch_size)

    def valid_batches(self) -> Iterator[dict[str, Tensor]]:
        return self.windows(self._valid, self.bptt)
