"""Attention over the encoder's annotations: additive (Bahdanau et al. 2015,
section 3.1 and appendix A.1.2, "MLP" in OpenNMT), dot and general (Luong et
al. 2015, section 3.1).

Everything is time-major: memory (S, B, K), mask (S, B) with True on real
source tokens. The key side of each score is computed once per batch by
`keys(memory)` and carried in the decoding state, so a decoder step only
projects its query. Scores on padding are -inf, so the weights are exactly 0
there and sum to 1 over the unmasked positions.

Speed (a decoder with input feeding calls this once per target token): torch's
CPU tanh is about 6x slower than its sigmoid here, and tanh(x) = 2 sigmoid(2x) - 1,
so the additive score v . tanh(W_q q + W_k k) is computed as
(2v) . sigmoid(2 W_q q + 2 W_k k): the - sum(v) that this drops moves every score
of one query alike, which the softmax ignores, and the doubled keys are computed
once per batch (`keys` returns 2 W_k m). One step is then an add, a sigmoid and a
product with v over (S, B, A), against five passes for tanh written out. The score
vector v is a matrix-vector product rather than a Linear with one output, and a
single step's context is a broadcast multiply-and-sum.

Memory (_no_shape_state): in bf16, each matmul of a new shape makes oneDNN build
a kernel that stays in memory; while decoding, the source length and the number
of live beam rows change with every batch and step, so a long stream of input
grew the process without bound (1.2 GB after 100k lines). Without gradients, a
single step's score is therefore an elementwise multiply-and-sum, which keeps
no per-shape state (measured: RSS flat at about 0.6 GB over 10k lines).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ATTENTIONS = ("bahdanau", "dot", "general", "none")


class Attention(nn.Module):
    """Base: score(query, keys) -> weights -> context; subclasses define the score."""

    def keys(self, memory: Tensor) -> Tensor:
        """(S, B, K) -> the precomputed key side (S, B, A)."""
        return memory

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """query (..., B, Q), keys (S, B, A) -> (..., S, B)."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor
                ) -> tuple[Tensor, Tensor]:
        """query (B, Q) or (T, B, Q) -> context (B, K) / (T, B, K), weights (B, S) / (T, B, S)."""
        scores = self.scores(query, keys)  # (S, B) or (T, S, B)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-2)  # over S
        if query.dim() == 2:
            context = (weights[..., None] * memory).sum(0)  # (B, K)
            return context, weights.t()  # (B, S)
        context = torch.einsum("tsb,sbk->tbk", weights, memory)  # (T, B, K)
        return context, weights.transpose(1, 2)  # (T, B, S)


class BahdanauAttention(Attention):
    """score(q, k) = v . tanh(W_q q + W_k k); no biases (as JoeyNMT). Computed as
    (2v) . sigmoid(2 W_q q + 2 W_k k), the same scores up to a shift per query (see
    the module's docstring); `keys` are 2 W_k m."""

    def __init__(self, query_size: int, key_size: int, attn_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, attn_size, bias=False)
        self.query_layer = nn.Linear(query_size, attn_size, bias=False)
        self.energy_layer = nn.Linear(attn_size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.key_layer(memory) * 2  # (S, B, A)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_layer(query)  # (B, A) or (T, B, A); doubled by add's alpha
        v = self.energy_layer.weight[0] * 2  # (A,)
        if query.dim() == 2:
            if torch.is_grad_enabled():
                return torch.sigmoid(torch.add(keys, q[None], alpha=2)) @ v  # (S, B)
            e = torch.add(keys, q[None], alpha=2).sigmoid_()  # in place: no gradients kept
            return (e * v).sum(-1)  # decoding: see _no_shape_state
        return torch.sigmoid(torch.add(keys[None], q[:, None], alpha=2)) @ v  # (T, S, B)


class DotAttention(Attention):
    """score(q, k) = q . k; the query and key sizes must be equal."""

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        if query.dim() == 2:
            if not torch.is_grad_enabled():
                return (query[None] * keys).sum(-1)  # decoding: see _no_shape_state
            return torch.einsum("ba,sba->sb", query, keys)  # (S, B)
        return torch.einsum("tba,sba->tsb", query, keys)  # (T, S, B)


class GeneralAttention(DotAttention):
    """score(q, k) = q . W k (Luong's "general"); W k is precomputed per batch."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.key_layer = nn.Linear(key_size, query_size, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.key_layer(memory)  # (S, B, Q)


def make_attention(kind: str, query_size: int, key_size: int) -> Attention | None:
    """An attention module, or None for kind "none"."""
    if kind == "bahdanau":
        return BahdanauAttention(query_size, key_size, query_size)
    if kind == "dot":
        if query_size != key_size:
            raise ValueError(f"dot attention needs equal sizes: decoder {query_size}, "
                             f"encoder output {key_size}; use general or bahdanau")
        return DotAttention()
    if kind == "general":
        return GeneralAttention(query_size, key_size)
    if kind == "none":
        return None
    raise ValueError(f"unknown attention {kind!r}; valid: {', '.join(ATTENTIONS)}")
