"""word2vec's data side (Mikolov et al. 2013, "Distributed representations of words and
phrases"; the C tool and gensim): frequent-word subsampling, the unigram^0.75 noise
distribution for negative sampling, and the dynamic context window, all in NumPy.

The corpus is one flat array of word ids plus a line number per word: words below
min-count (the tokenizer's <unk>) are dropped before windows are built, as gensim does,
and a window never crosses a line. Each epoch draws a new subsample and new windows;
a `Batch` holds, for each predicted word, its context ids (padded with `PAD` up to the
batch's largest window, masked out) and its targets: the word itself, then `negative`
noise words.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seqtool.data.tokenizer import EOS, PAD

if TYPE_CHECKING:
    import numpy as np

    from seqtool.data.tokenizer import Tokenizer

FIRST_WORD = EOS + 1  # ids below are the specials <pad> <unk> <s> <eos>: never trained


@dataclass
class Corpus:
    """Word ids (int32) and the line each one came from, with the counts per id."""

    ids: np.ndarray  # (N,) int32, every id >= FIRST_WORD
    lines: np.ndarray  # (N,) int32, non-decreasing
    counts: np.ndarray  # (V,) int64, zero for the specials
    raw_words: int  # words read, unknown ones included

    @property
    def words(self) -> int:
        return int(self.ids.shape[0])


def encode_corpus(lines: Iterable[str], tokenizer: Tokenizer) -> Corpus:
    """Encode lines with a word tokenizer, dropping unknown words (below min-count)."""
    import numpy as np

    ids: list[int] = []
    line_of: list[int] = []
    raw = 0
    for n, line in enumerate(lines):
        enc = tokenizer.encode(line)
        raw += len(enc)
        kept = [i for i in enc if i >= FIRST_WORD]
        ids.extend(kept)
        line_of.extend([n] * len(kept))
    arr = np.asarray(ids, dtype=np.int32)
    counts = np.bincount(arr, minlength=tokenizer.vocab_size).astype(np.int64)
    return Corpus(arr, np.asarray(line_of, dtype=np.int32), counts, raw)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """P(keep) per id, word2vec's formula as in the C tool and gensim: with
    t = sample * total, p = (sqrt(c / t) + 1) * t / c, capped at 1 (1 for sample = 0)."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    t = sample * counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(counts / t) + 1.0) * t / counts
    return np.where(counts > 0, np.minimum(p, 1.0), 1.0)


@dataclass
class NoiseTable:
    """Walker's alias table for the unigram^power distribution: O(1) exact draws."""

    prob: np.ndarray  # (V,) float64: keep the drawn column with this probability ...
    alias: np.ndarray  # (V,) int64: ... else take this id

    def probabilities(self) -> np.ndarray:
        """The distribution the table draws from (for checks)."""
        import numpy as np

        v = self.prob.shape[0]
        p = self.prob.copy()
        np.add.at(p, self.alias, 1.0 - self.prob)
        return p / v

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Noise word ids (int64) of the given shape."""
        import numpy as np

        col = rng.integers(0, self.prob.shape[0], shape)
        return np.where(rng.random(shape) < self.prob[col], col, self.alias[col])


def noise_table(counts: np.ndarray, power: float = 0.75) -> NoiseTable:
    """The noise distribution of negative sampling, P(w) ~ count(w)^power (Mikolov et
    al. 2013: 3/4), as an alias table (Vose's construction)."""
    import numpy as np

    weights = np.asarray(counts, dtype=np.float64) ** power
    weights[np.asarray(counts) <= 0] = 0.0
    v = weights.shape[0]
    scaled = weights * v / weights.sum()
    prob = np.ones(v)
    alias = np.arange(v, dtype=np.int64)
    small = [i for i in range(v) if scaled[i] < 1.0]
    large = [i for i in range(v) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    for i in small + large:  # rounding leftovers: exactly 1 up to float error
        prob[i] = 1.0 if weights[i] > 0 else 0.0
        if weights[i] <= 0:
            alias[i] = int(np.argmax(weights))
    return NoiseTable(prob, alias)


def subsample(corpus: Corpus, keep: np.ndarray, rng: np.random.Generator,
              span: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's subsample of corpus words [lo, hi) (default all): (ids, lines) kept."""
    lo, hi = span or (0, corpus.words)
    ids, lines = corpus.ids[lo:hi], corpus.lines[lo:hi]
    mask = rng.random(ids.shape[0]) < keep[ids]
    return ids[mask], lines[mask]


def context_windows(ids: np.ndarray, lines: np.ndarray, window: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts (N, 2 * window) int64, PAD where masked, the mask (N, 2 * window) and
    each word's reach (N,).

    Word i draws its reach b_i from 1..window (word2vec's reduced window) and sees the
    words at i - b_i .. i + b_i of its own line, itself excluded. Columns are the
    offsets -window..-1, 1..window, so a reach of b uses the middle 2b columns."""
    import numpy as np

    n = ids.shape[0]
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])  # (2W,)
    reach = np.asarray(rng.integers(1, window + 1, n))  # (N,)
    pos = np.arange(n)[:, None] + offsets[None, :]  # (N, 2W)
    inside = (pos >= 0) & (pos < n)
    pos = np.clip(pos, 0, max(n - 1, 0))
    mask = inside & (np.abs(offsets)[None, :] <= reach[:, None]) & (lines[pos] == lines[:, None])
    ctx = np.where(mask, ids[pos], PAD).astype(np.int64)
    return ctx, mask, reach


@dataclass
class Batch:
    """One batched update: N predicted words."""

    contexts: np.ndarray  # (N, 2R) int64 context ids, PAD where masked (R <= window)
    mask: np.ndarray  # (N, 2R) bool
    targets: np.ndarray  # (N, 1 + negative) int64: the word, then noise words
    words: int  # corpus words (before subsampling) this batch stands for


def epoch_batches(corpus: Corpus, keep: np.ndarray, noise: NoiseTable, window: int,
                  negative: int, batch_words: int, rng: np.random.Generator,
                  span: tuple[int, int] | None = None, chunk_words: int = 65536
                  ) -> Iterator[Batch]:
    """The batches of one epoch over corpus words [lo, hi) (default all; a worker's
    share). Chunks of `chunk_words` kept words are windowed at once, in corpus order;
    within a chunk, words are grouped by their reach so that a batch carries only the
    2 x reach context columns it needs (no padding to the full window). The span's
    share of the raw word count is spread over its batches, so the learning rate
    decays with progress through the corpus, as in word2vec."""
    import numpy as np

    lo_span, hi_span = span or (0, corpus.words)
    ids, lines = subsample(corpus, keep, rng, (lo_span, hi_span))
    n = ids.shape[0]
    if n == 0:
        return
    raw_per_kept = corpus.raw_words * (hi_span - lo_span) / max(corpus.words, 1) / n
    done_raw = 0
    for start in range(0, n, chunk_words):
        # extend the chunk by `window` words each side so windows see across its edges
        lo, hi = max(0, start - window), min(n, start + chunk_words + window)
        ctx, mask, reach = context_windows(ids[lo:hi], lines[lo:hi], window, rng)
        a, b = start - lo, min(n, start + chunk_words) - lo
        order = a + np.argsort(reach[a:b], kind="stable")
        ctx, mask, reach, words = ctx[order], mask[order], reach[order], ids[lo:hi][order]
        for s in range(0, b - a, batch_words):
            e = min(s + batch_words, b - a)
            cols = slice(window - int(reach[e - 1]), window + int(reach[e - 1]))
            targets = np.empty((e - s, 1 + negative), dtype=np.int64)
            targets[:, 0] = words[s:e]
            targets[:, 1:] = noise.sample((e - s, negative), rng)
            end_raw = round((start + e) * raw_per_kept)
            yield Batch(np.ascontiguousarray(ctx[s:e, cols]),
                        np.ascontiguousarray(mask[s:e, cols]), targets, end_raw - done_raw)
            done_raw = end_raw
