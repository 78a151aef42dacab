"""word2vec's training loop compiled with numba: CBOW and skip-gram with negative
sampling, one word at a time, updating the two tables in place, as the C tool and
gensim's Cython do (Mikolov et al. 2013; gensim word2vec_inner.pyx).

The torch engine (models/word2vec.py) updates a batch of words at once and so writes
(N, 2W, D) products before scattering them into the tables; this kernel reads and
writes only the rows it touches, each update seeing the last. It runs without the GIL
(`nogil`): seqtool.commands.word2vec.fit calls it from several threads on spans of the
corpus, all writing the shared tables without locks (Hogwild, as gensim).

One call trains one chunk of corpus words (whole lines where possible) at one learning
rate: it subsamples frequent words, draws each word's reach from 1..window, and takes
the word itself (label 1) plus `negative` noise words (label 0, from the alias table of
seqtool.data.word2vec; a noise word equal to the word is skipped) as targets.

- CBOW: h = mean of the context's in-vectors; the error vector reaches every context
  word in full (gensim's cbow_mean = 1).
- Skip-gram: each context word's in-vector predicts the word on its own (gensim's
  sg = 1); the K noise words are drawn once per word and shared by its context words,
  as in the torch engine (Ji et al. 2016), where gensim draws them per pair.

Random numbers come from a 64-bit linear congruential generator per worker (state in a
one-element uint64 array, advanced in place), so one worker with one seed always gives
the same vectors. Only this module imports numba; seqtool.models.word2vec.choose_engine
says whether it can run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:
    from seqtool.config import Word2VecConfig
    from seqtool.data.word2vec import Corpus, NoiseTable

_MULT = np.uint64(6364136223846793005)  # Knuth's MMIX LCG
_INC = np.uint64(1442695040888963407)
_S11, _S32 = np.uint64(11), np.uint64(32)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53
_MAX_EXP = 30.0  # sigmoid(±30) is 0 or 1 in float32


@numba.njit(nogil=True, cache=True, inline="always")
def _next(state: np.ndarray) -> np.uint64:
    state[0] = state[0] * _MULT + _INC
    return state[0]


@numba.njit(nogil=True, cache=True, inline="always")
def _uniform(state: np.ndarray) -> float:
    """A float in [0, 1) from the top 53 bits."""
    return float(_next(state) >> _S11) * _TO_UNIT


@numba.njit(nogil=True, cache=True, inline="always")
def _below(state: np.ndarray, n: int) -> np.int64:
    """An integer in [0, n), n < 2^32, from the top 32 bits (Lemire's multiply-shift)."""
    return np.int64(((_next(state) >> _S32) * np.uint64(n)) >> _S32)


@numba.njit(nogil=True, cache=True, inline="always")
def _noise(state: np.ndarray, prob: np.ndarray, alias: np.ndarray) -> np.int64:
    col = _below(state, prob.shape[0])
    return col if _uniform(state) < prob[col] else np.int64(alias[col])


@numba.njit(nogil=True, cache=True, inline="always")
def _draw_targets(word: int, prob: np.ndarray, alias: np.ndarray, state: np.ndarray,
                  targets: np.ndarray) -> None:
    """targets (1 + K,): the word, then K noise words; -1 for a noise word that is the
    word itself (skipped, as in word2vec)."""
    targets[0] = word
    for d in range(1, targets.shape[0]):
        t = _noise(state, prob, alias)
        targets[d] = -1 if t == word else t


@numba.njit(nogil=True, cache=True, fastmath=True)
def _predict(h: np.ndarray, syn1: np.ndarray, targets: np.ndarray, alpha: float,
             err: np.ndarray, loss: np.ndarray) -> None:
    """One prediction from the input vector h (D,) against targets (the word, label 1,
    then noise words, label 0; -1 = skip): updates their out-vectors, adds the error
    for h into err (D,), and adds the logistic loss and the number of targets to
    loss[0], loss[1] when loss has 2 slots."""
    dim = h.shape[0]
    for d in range(targets.shape[0]):
        if targets[d] < 0:
            continue
        label = 1.0 if d == 0 else 0.0
        out = syn1[targets[d]]
        f = 0.0
        for k in range(dim):
            f += h[k] * out[k]
        f = min(max(f, -_MAX_EXP), _MAX_EXP)
        g = (label - 1.0 / (1.0 + math.exp(-f))) * alpha
        for k in range(dim):
            err[k] += g * out[k]
            out[k] += g * h[k]
        if loss.shape[0] == 2:  # softplus(-f) for the word, softplus(f) for noise
            x = -f if d == 0 else f
            loss[0] += max(x, 0.0) + math.log1p(math.exp(-abs(x)))
            loss[1] += 1.0


@numba.njit(nogil=True, cache=True, inline="always")
def _add(vec: np.ndarray, err: np.ndarray) -> None:
    for k in range(vec.shape[0]):
        vec[k] += err[k]


@numba.njit(nogil=True, cache=True, fastmath=True)
def _skipgram_word(syn0: np.ndarray, syn1: np.ndarray, words: np.ndarray, line_of: np.ndarray,
                   i: int, lo: int, hi: int, targets: np.ndarray, alpha: float,
                   err: np.ndarray, loss: np.ndarray) -> None:
    """Each context word j of word i predicts it, against the shared noise words."""
    for j in range(lo, hi):
        if j != i and line_of[j] == line_of[i]:
            vec = syn0[words[j]]
            err[:] = 0.0
            _predict(vec, syn1, targets, alpha, err, loss)
            _add(vec, err)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _cbow_word(syn0: np.ndarray, syn1: np.ndarray, words: np.ndarray, line_of: np.ndarray,
               i: int, lo: int, hi: int, targets: np.ndarray, alpha: float, h: np.ndarray,
               err: np.ndarray, loss: np.ndarray) -> None:
    """The mean h of word i's context predicts it; the error reaches each context word."""
    h[:] = 0.0
    count = 0
    for j in range(lo, hi):
        if j != i and line_of[j] == line_of[i]:
            _add(h, syn0[words[j]])
            count += 1
    if count == 0:
        return
    h /= count
    err[:] = 0.0
    _predict(h, syn1, targets, alpha, err, loss)
    for j in range(lo, hi):
        if j != i and line_of[j] == line_of[i]:
            _add(syn0[words[j]], err)


@numba.njit(nogil=True, cache=True, fastmath=True)
def train_chunk(syn0: np.ndarray, syn1: np.ndarray, ids: np.ndarray, lines: np.ndarray,
                keep: np.ndarray, prob: np.ndarray, alias: np.ndarray, window: int,
                negative: int, skipgram: bool, alpha: float, state: np.ndarray,
                loss: np.ndarray) -> int:
    """Train on corpus words ids (n,) int32 with their line numbers (n,): syn0, syn1
    (V, D) float32 in place. keep (V,): P(keep) for subsampling; prob, alias: the noise
    table. Returns the number of words kept; loss as in _predict."""
    n, dim = ids.shape[0], syn0.shape[1]
    words = np.empty(n, dtype=np.int32)
    line_of = np.empty(n, dtype=np.int32)
    m = 0
    for i in range(n):  # subsampling, before the windows (as word2vec)
        if keep[ids[i]] >= 1.0 or _uniform(state) < keep[ids[i]]:
            words[m], line_of[m] = ids[i], lines[i]
            m += 1
    h = np.empty(dim, dtype=np.float32)
    err = np.empty(dim, dtype=np.float32)
    targets = np.empty(1 + negative, dtype=np.int64)
    for i in range(m):
        reach = 1 + int(_below(state, window))
        lo, hi = max(0, i - reach), min(m, i + reach + 1)
        _draw_targets(words[i], prob, alias, state, targets)
        if skipgram:
            _skipgram_word(syn0, syn1, words, line_of, i, lo, hi, targets, alpha, err, loss)
        else:
            _cbow_word(syn0, syn1, words, line_of, i, lo, hi, targets, alpha, h, err, loss)
    return m


def seed_state(seed: int, worker: int) -> np.ndarray:
    """A worker's generator state (1,) uint64, from the seed and the worker's number."""
    rng = np.random.default_rng([seed, worker])
    return np.array([rng.integers(1, 2**63, dtype=np.uint64)], dtype=np.uint64)


def compile_kernel() -> None:
    """Compile train_chunk (or load it from numba's cache) on a tiny input, so that the
    first real chunk is not timed with the compiler."""
    syn = np.zeros((6, 2), dtype=np.float32)
    ids = np.array([4, 5, 4, 5], dtype=np.int32)
    table = (np.full(6, 1.0), np.arange(6, dtype=np.int64))
    for skipgram in (False, True):
        train_chunk(syn, syn.copy(), ids, np.zeros(4, dtype=np.int32), np.ones(6), *table,
                    2, 1, skipgram, 0.0, seed_state(0, 0), np.zeros(2))


def chunk_bounds(lines: np.ndarray, lo: int, hi: int, chunk_words: int) -> list[tuple[int, int]]:
    """Corpus words [lo, hi) cut into chunks of about `chunk_words`, each ending where a
    line ends (so no window is cut short) unless that line runs past 4 x chunk_words."""
    starts = np.flatnonzero(np.diff(lines[lo:hi])) + lo + 1  # first words of lines
    out, a = [], lo
    while a < hi:
        b = min(hi, a + chunk_words)
        k = int(np.searchsorted(starts, b))
        line_end = int(starts[k]) if k < starts.shape[0] else hi
        if line_end <= a + 4 * chunk_words:
            b = line_end
        out.append((a, b))
        a = b
    return out


def train_epoch(syn0: np.ndarray, syn1: np.ndarray, corpus: Corpus, keep: np.ndarray,
                noise: NoiseTable, cfg: Word2VecConfig, span: tuple[int, int],
                state: np.ndarray, lr_now: Callable[[], float], chunk_words: int = 10_000,
                loss_every: int = 20) -> Iterator[tuple[int, float | None]]:
    """One epoch over corpus words [lo, hi) (a worker's span), chunk by chunk, each at
    the learning rate lr_now() gives when it starts (as gensim's jobs). Yields, per
    chunk, the raw corpus words it stands for (unknown words included, so that the
    learning rate decays over the raw count) and the mean loss every `loss_every`
    chunks (else None)."""
    skipgram = cfg.arch == "skipgram"
    per_word = corpus.raw_words / max(corpus.words, 1)
    for step, (a, b) in enumerate(chunk_bounds(corpus.lines, span[0], span[1], chunk_words)):
        loss = np.zeros(2 if step % loss_every == 0 else 0)
        train_chunk(syn0, syn1, corpus.ids[a:b], corpus.lines[a:b], keep, noise.prob,
                    noise.alias, cfg.window, cfg.negative, skipgram, lr_now(), state, loss)
        raw = round(b * per_word) - round(a * per_word)
        yield raw, (float(loss[0] / loss[1]) if loss.shape[0] and loss[1] else None)
