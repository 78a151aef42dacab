"""word2vec with negative sampling: skip-gram and CBOW (Mikolov et al. 2013), trained
with plain SGD in batched tensor updates instead of word2vec's one-pair-at-a-time loop.

Two tables, as in the C tool and gensim: `in_vectors` (syn0, the word vectors that are
exported) and `out_vectors` (syn1neg, zero at the start). Every update predicts a word
w from its context window C (padded, masked; seqtool.data.word2vec) against 1 + K
targets: w itself (label 1) and K noise words from the unigram^0.75 distribution
(label 0).

- CBOW: h = mean of the context's in-vectors; one logistic loss per target, and the
  error vector reaches every context word in full (word2vec's cbow_mean = 1).
- Skip-gram: each context word predicts w on its own, as in gensim; the K noise words
  are shared by the context words of one w (Ji et al. 2016, "Parallelizing word2vec in
  shared and distributed memory"), which turns the per-pair dot products into one small
  matrix product per word at the same expected gradient.

The gradients of one batch are summed into the tables with index_add_ (no autograd,
no optimizer state), except that a row occurring more often in the batch than a cap
(a frequent word, or a frequent noise word) gets its summed update scaled down to the
cap's worth (ROW_CAPS); noise words equal to w are skipped, as word2vec does.

This is the torch engine. The numba engine (models/word2vec_numba.py; the `fast`
extra) trains the same tables one word at a time, as gensim does, and is faster;
choose_engine picks one (Word2VecConfig.engine; AUTO_ENGINE per architecture).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqtool.config import Word2VecConfig

DEFAULT_ALPHA = {"skipgram": 0.025, "cbow": 0.05}
# A row that occurs c > cap times in one batch gets cap / c of its summed update, caps
# (output table, input table) per architecture. word2vec applies those c updates one
# after another, each seeing the last; summed at once, a frequent word's c steps
# overshoot together and large batches diverge (skip-gram at 2048 words per batch,
# both at 4096). The values are the best of 4, 16, 64 and none on WikiText-2
# (bench/word2vec_vs_gensim.py): CBOW's analogies suffer when its input rows are capped
# at 16, skip-gram's WordSim gains from it.
ROW_CAPS = {"skipgram": (16.0, 16.0), "cbow": (16.0, 64.0)}


ENGINES = ("numba", "torch")
# What `auto` picks where numba is installed (bench/RESULTS.md, "word2vec engines"): CBOW
# on numba runs at 1.69x gensim's words/s with scores at gensim's level; skip-gram stays
# on torch, whose batched update (noise words shared by a word's contexts, row caps)
# scores well above gensim (WordSim-353 0.37 vs 0.32) at 1.19x its words/s, where the
# numba skip-gram scores at gensim's level at 1.93x.
AUTO_ENGINE = {"cbow": "numba", "skipgram": "torch"}


def numba_available() -> bool:
    """Whether the numba engine can run (numba installed and importable)."""
    try:
        import seqtool.models.word2vec_numba  # noqa: F401
    except ImportError:
        return False
    return True


def choose_engine(requested: str, arch: str) -> str:
    """The engine that trains `arch`: `requested` (auto, numba, torch); auto is
    AUTO_ENGINE[arch], torch where numba is not installed."""
    from seqtool.errors import ConfigError

    if requested == "auto":
        requested = AUTO_ENGINE[arch]
        if requested == "numba" and not numba_available():
            return "torch"
    if requested == "numba" and not numba_available():
        raise ConfigError("the numba engine needs numba, which is not installed",
                          "pip install -c constraints.txt -e '.[fast]' (or 'seqtool[fast]'), "
                          "or use --engine torch")
    return requested


class Word2Vec(nn.Module):
    kind = "word2vec"

    def __init__(self, cfg: Word2VecConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_vectors = nn.Embedding(vocab_size, cfg.dim)
        self.out_vectors = nn.Embedding(vocab_size, cfg.dim)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """gensim 4's start: in-vectors U(-1, 1) / dim, out-vectors zero. (The C tool
        draws U(-0.5, 0.5) / dim; on WikiText-2 the wider start gave +0.29 points of
        analogies for CBOW and +0.24 for skip-gram, paired over 6 and 4 seeds.)"""
        with torch.no_grad():
            w = self.in_vectors.weight
            w.copy_((2.0 * torch.rand(w.shape, generator=generator) - 1.0) / self.cfg.dim)
            self.out_vectors.weight.zero_()

    @property
    def alpha(self) -> float:
        return self.cfg.alpha or DEFAULT_ALPHA[self.cfg.arch]

    def vectors(self) -> Tensor:
        """(V, dim) the word vectors (the input table)."""
        return self.in_vectors.weight.detach()

    @torch.no_grad()
    def update(self, contexts: Tensor, mask: Tensor, targets: Tensor, lr: float,
               with_loss: bool = False) -> float | None:
        """One SGD step on a batch: contexts, mask (N, 2W); targets (N, 1 + K).
        Returns the mean loss per predicted word and target when with_loss."""
        fn = _update_cbow if self.cfg.arch == "cbow" else _update_skipgram
        return fn(self.in_vectors.weight, self.out_vectors.weight, contexts, mask, targets,
                  lr, ROW_CAPS[self.cfg.arch], with_loss)


def _labels_and_weights(targets: Tensor) -> tuple[Tensor, Tensor]:
    """Labels (1, 1 + K): 1 for the word, 0 for noise; weights (N, 1 + K): 0 for a noise
    word that is the word itself (skipped, as in word2vec)."""
    labels = torch.zeros(1, targets.shape[1])
    labels[0, 0] = 1.0
    keep = torch.ones(targets.shape, dtype=torch.float32)
    keep[:, 1:] = (targets[:, 1:] != targets[:, :1]).float()
    return labels, keep


def _row_scale(ids: Tensor, vocab: int, cap: float, present: Tensor | None = None
               ) -> Tensor:
    """(n,) min(1, cap / c): c = how often the entry's row occurs in the batch (entries
    weighted by `present`)."""
    counts = torch.bincount(ids, weights=present, minlength=vocab)
    return (cap / counts[ids].clamp(min=1.0)).clamp(max=1.0)


def _loss(scores: Tensor, labels: Tensor, weight: Tensor) -> float:
    """Mean logistic loss: -log s(x) for the word, -log s(-x) for noise."""
    sign = 2.0 * labels - 1.0
    return float((F.softplus(-sign * scores) * weight).sum() / weight.sum().clamp(min=1.0))


def _update_cbow(syn0: Tensor, syn1: Tensor, contexts: Tensor, mask: Tensor,
                 targets: Tensor, lr: float, caps: tuple[float, float], with_loss: bool
                 ) -> float | None:
    n, width = contexts.shape
    dim = syn0.shape[1]
    m = mask.float()  # (N, 2W)
    count = m.sum(1, keepdim=True)  # (N, 1)
    has_context = (count > 0).float()
    # h = mean of the context's in-vectors, without gathering them into (N, 2W, D)
    h = F.embedding_bag(contexts, syn0, per_sample_weights=m / count.clamp(min=1.0),
                        mode="sum")  # (N, D)
    out = syn1.index_select(0, targets.reshape(-1)).view(n, -1, dim)  # (N, 1+K, D)
    scores = (out * h[:, None, :]).sum(2)  # (N, 1+K); a bmm is slower for this shape
    labels, keep = _labels_and_weights(targets)
    weight = keep * has_context  # (N, 1+K)
    g = (labels - torch.sigmoid(scores)) * weight * lr  # (N, 1+K)
    err = torch.bmm(g[:, None, :], out)[:, 0]  # (N, D): reaches every context word
    t, c = targets.reshape(-1), contexts.reshape(-1)
    g_out = g * _row_scale(t, syn1.shape[0], caps[0]).view(n, -1)  # (N, 1+K)
    m_in = m * _row_scale(c, syn0.shape[0], caps[1], m.reshape(-1)).view(n, width)
    syn1.index_add_(0, t, (g_out[:, :, None] * h[:, None, :]).view(-1, dim))
    syn0.index_add_(0, c, (m_in[:, :, None] * err[:, None, :]).view(-1, dim))
    return _loss(scores, labels, weight) if with_loss else None


def _update_skipgram(syn0: Tensor, syn1: Tensor, contexts: Tensor, mask: Tensor,
                     targets: Tensor, lr: float, caps: tuple[float, float], with_loss: bool
                     ) -> float | None:
    n, width = contexts.shape
    dim = syn0.shape[1]
    ctx_vecs = syn0.index_select(0, contexts.reshape(-1)).view(n, width, dim)  # (N, 2W, D)
    out = syn1.index_select(0, targets.reshape(-1)).view(n, -1, dim)  # (N, 1+K, D)
    scores = torch.bmm(ctx_vecs, out.transpose(1, 2))  # (N, 2W, 1+K)
    labels, keep = _labels_and_weights(targets)
    weight = mask.float()[:, :, None] * keep[:, None, :]  # (N, 2W, 1+K)
    g = (labels - torch.sigmoid(scores)) * weight * lr  # (N, 2W, 1+K)
    t, c = targets.reshape(-1), contexts.reshape(-1)
    g_out = g * _row_scale(t, syn1.shape[0], caps[0]).view(n, 1, -1)
    g_in = g * _row_scale(c, syn0.shape[0], caps[1], mask.reshape(-1).float()
                          ).view(n, width, 1)
    grad_ctx = torch.bmm(g_in, out)  # (N, 2W, D); zero on masked slots
    grad_out = torch.bmm(g_out.transpose(1, 2), ctx_vecs)  # (N, 1+K, D)
    syn1.index_add_(0, t, grad_out.view(-1, dim))
    syn0.index_add_(0, c, grad_ctx.view(-1, dim))
    return _loss(scores, labels, weight) if with_loss else None
