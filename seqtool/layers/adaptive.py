"""Adaptive input embeddings and a tied, exact adaptive softmax.

Grave et al. 2017 ("Efficient softmax approximation for GPUs") split the
vocabulary by frequency rank into a head (frequent words, full dimension) and
tail clusters with smaller dimensions; Baevski & Auli 2019 use the same split
for the input embeddings and tie the two. Probabilities stay exact:
p(w) = p(cluster | h) * p(w | cluster, h). With `cutoffs=()` this is an
ordinary (tied) full softmax.

Word ids must be sorted by frequency (the word tokenizer does that).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _bounds(vocab: int, cutoffs: tuple[int, ...]) -> list[int]:
    cuts = [c for c in cutoffs if 0 < c < vocab]
    if cuts != sorted(set(cuts)):
        raise ValueError(f"cutoffs must be increasing and below the vocabulary size: {cutoffs}")
    return [0, *cuts, vocab]


MIN_ROWS = 8  # a tail cluster's projection runs on at least this many rows


def rows_apart(f: nn.Module, x: Tensor) -> Tensor:
    """f(x) for x (N, d), computed on at least MIN_ROWS rows (the first repeated), so a
    token's vector does not depend on how many tail tokens its batch holds: BLAS
    picks its kernel by the number of rows (here 1, 2-3 and 4+ differ), and the
    kernel decides the last bits of float32. Batched prediction then equals one
    prompt at a time (commands/predict.py)."""
    n = x.shape[0]
    if n >= MIN_ROWS or isinstance(f, nn.Identity):
        return cast(Tensor, f(x))
    return cast(Tensor, f(torch.cat([x, x[:1].expand(MIN_ROWS - n, -1)]))[:n])


class AdaptiveEmbedding(nn.Module):
    """Token ids -> vectors of size `dim`; cluster i has dim // div**i, projected up."""

    def __init__(self, vocab: int, dim: int, cutoffs: tuple[int, ...] = (),
                 div_value: float = 4.0) -> None:
        super().__init__()
        self.bounds = _bounds(vocab, cutoffs)
        self.dim = dim
        self.tables = nn.ModuleList()
        self.projs = nn.ModuleList()
        for i in range(len(self.bounds) - 1):
            d_i = max(1, int(dim // div_value ** i))
            self.tables.append(nn.Embedding(self.bounds[i + 1] - self.bounds[i], d_i))
            self.projs.append(nn.Identity() if d_i == dim else nn.Linear(d_i, dim, bias=False))
        for i in range(len(self.tables)):
            w = self.table(i).weight
            nn.init.normal_(w, std=w.shape[1] ** -0.5)

    def table(self, i: int) -> nn.Embedding:
        """The embedding table of cluster i (0: the head)."""
        return cast(nn.Embedding, self.tables[i])

    @torch.no_grad()
    def set_rows(self, ids: Tensor, vectors: Tensor) -> Tensor:
        """Overwrite the vectors of `ids` (N,) with `vectors` (N, dim) in the clusters held
        at full size (the head; a tail too when div_value is 1). Rows of smaller tail
        clusters, which sit behind a projection, are left as they are. Returns the mask
        (N,) of the rows written."""
        written = torch.zeros(ids.shape, dtype=torch.bool)
        for i, proj in enumerate(self.projs):
            lo, hi = self.bounds[i], self.bounds[i + 1]
            here = (ids >= lo) & (ids < hi)
            if isinstance(proj, nn.Identity) and here.any():
                w = self.table(i).weight
                w[ids[here] - lo] = vectors[here].to(w.dtype)
                written |= here
        return written

    def forward(self, ids: Tensor) -> Tensor:
        if len(self.tables) == 1:
            return self.table(0)(ids)
        flat = ids.reshape(-1)
        # the head's own output dtype (an int8 table, layers/int8.py, returns fp32)
        out = self.table(0)(flat[:0]).new_zeros(flat.shape[0], self.dim)
        for i, (table, proj) in enumerate(zip(self.tables, self.projs, strict=False)):
            lo, hi = self.bounds[i], self.bounds[i + 1]
            idx = ((flat >= lo) & (flat < hi)).nonzero().squeeze(1)
            if idx.numel():
                out = out.index_copy(0, idx, rows_apart(proj, table(flat[idx] - lo))
                                     .to(out.dtype))
        return out.view(*ids.shape, self.dim)


class AdaptiveSoftmax(nn.Module):
    """Exact log-probabilities over the vocabulary from hidden states of size `dim`.

    With `tie=embedding`, the head word vectors, tail vectors and tail
    projections are those of the AdaptiveEmbedding.
    """

    def __init__(self, vocab: int, dim: int, cutoffs: tuple[int, ...] = (),
                 div_value: float = 4.0, tie: AdaptiveEmbedding | None = None) -> None:
        super().__init__()
        self.bounds = _bounds(vocab, cutoffs)
        self.vocab = vocab
        n_clusters = len(self.bounds) - 2
        self.tied = tie is not None
        if tie is None:
            tie = AdaptiveEmbedding(vocab, dim, cutoffs, div_value)
            self.own = tie
        self._emb = [tie]  # a list, so the tied module is not registered twice
        self.cluster = nn.Parameter(torch.zeros(n_clusters, dim))
        self.bias = nn.Parameter(torch.zeros(self.bounds[1] + n_clusters))
        self.tail_bias = nn.ParameterList(
            nn.Parameter(torch.zeros(self.bounds[i + 1] - self.bounds[i]))
            for i in range(1, len(self.bounds) - 1))

    @property
    def emb(self) -> AdaptiveEmbedding:
        return self._emb[0]

    def _head_logits(self, h: Tensor) -> Tensor:
        w = self.emb.table(0).weight
        if self.cluster.shape[0]:
            w = torch.cat([w, self.cluster.to(w.dtype)], 0)
        return F.linear(h, w, self.bias)  # (N, head + clusters)

    def _tail_log_probs(self, h: Tensor, i: int) -> Tensor:
        proj = self.emb.projs[i]
        hp = h @ proj.weight if isinstance(proj, nn.Linear) else h  # (N, d_i)
        logits = F.linear(hp, self.emb.table(i).weight, self.tail_bias[i - 1])
        return F.log_softmax(logits.float(), dim=-1)

    def log_prob(self, h: Tensor) -> Tensor:
        """(N, dim) -> (N, vocab) log-probabilities."""
        head = F.log_softmax(self._head_logits(h).float(), dim=-1)
        parts = [head[:, : self.bounds[1]]]
        for i in range(1, len(self.bounds) - 1):
            parts.append(head[:, self.bounds[1] + i - 1: self.bounds[1] + i]
                         + self._tail_log_probs(h, i))
        return torch.cat(parts, dim=1)

    def nll(self, h: Tensor, target: Tensor) -> Tensor:
        """(N, dim), (N,) -> (N,) negative log-likelihood of each target."""
        head = F.log_softmax(self._head_logits(h).float(), dim=-1)
        head_target = target.clone()
        head_size = self.bounds[1]
        tail_lp = torch.zeros_like(target, dtype=head.dtype)
        for i in range(1, len(self.bounds) - 1):
            lo, hi = self.bounds[i], self.bounds[i + 1]
            mask = (target >= lo) & (target < hi)
            head_target = torch.where(mask, head_size + i - 1, head_target)
            idx = mask.nonzero().squeeze(1)
            if idx.numel():
                lp = self._tail_log_probs(h[idx], i)
                picked = lp.gather(1, (target[idx] - lo)[:, None])[:, 0]
                tail_lp = tail_lp.index_copy(0, idx, picked)
        return -(head.gather(1, head_target[:, None])[:, 0] + tail_lp)
