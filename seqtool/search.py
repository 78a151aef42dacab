"""Batched beam search, written once against the step protocol (models/base.py).

It calls only `start`, `step` and `reorder`, so it decodes every model that
speaks the protocol (seq2seq, LM, HRED) without knowing which it is (a model may
add `reorder_within_sources`, used while every row stays with its sentence, to
skip copying what the rows of one sentence share). B
sentences x K beams are decoded as B*K rows of one batch; a sentence leaves
the batch (one `reorder` with the surviving rows) as soon as its result is
final, so short sentences stop costing time.

At each step the 2K best extensions of a sentence's K beams are taken (at
most K of them can end in EOS, so K non-EOS ones always remain): EOS
candidates ranked among the first K become finished hypotheses, the K best
non-EOS ones stay alive. A sentence is final when it reaches its length limit
(its alive beams are then finished as they are, without EOS, like greedy
decoding at max_len), or when it has n_best finished hypotheses and the n-th
beats the best alive beam: with log-probabilities <= 0 a continuation's raw
score only falls. Without a length penalty that stop is exact. With one
(alpha > 0), stop="exact" compares with best_alive / lp(limit), a bound no
continuation can beat, but loose: most sentences then run to their length
limit. stop="early" (the default, as OpenNMT-py's beam search) compares with
best_alive / lp(t + 1), the best alive beam's score if it ended now, which
ends a sentence once its finished hypotheses lead, at a fraction of the
steps. Beam 1 is greedy decoding either way.

Length penalty (Wu et al. 2016, GNMT, eq. 14): score = log P / lp(|Y|),
lp(n) = ((5 + n) / 6) ** alpha, |Y| counting EOS; alpha <= 0 (JoeyNMT's -1)
means no penalty. `no_repeat_ngram` = n forbids any n-gram that already occurs
in the hypothesis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seqtool.data.tokenizer import EOS


STOPS = ("early", "exact")


@dataclass
class Hypothesis:
    tokens: list[int]  # generated ids, EOS excluded
    score: float  # ranking score: log_prob / length penalty
    log_prob: float  # summed log-probability of the tokens (and of EOS when it ended so)
    attention: Tensor | None = None  # (steps, S): one row per generated token, EOS included


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha if alpha > 0 else 1.0


def length_limits(src_len: Sequence[int] | Tensor, ratio: float, offset: int,
                  cap: int) -> list[int]:
    """Per-sentence output limits: min(cap, ratio * source length + offset), at least 1."""
    lengths = src_len.tolist() if isinstance(src_len, Tensor) else list(src_len)
    return [max(1, min(cap, int(ratio * n + offset))) for n in lengths]


def ban_repeated_ngrams(lp: Tensor, history: Tensor, n: int) -> Tensor:
    """Set -inf where the next token would repeat an n-gram of `history` (R, t)."""
    steps = history.shape[1]
    if n < 1 or steps < n:  # no complete n-gram yet
        return lp
    grams = history.unfold(1, n, 1)  # (R, G, n)
    prefix = history[:, steps - n + 1:]  # (R, n-1)
    match = (grams[..., :-1] == prefix[:, None, :]).all(-1)  # (R, G)
    hits = torch.zeros_like(lp).scatter_add_(1, grams[..., -1], match.to(lp.dtype))
    return lp.masked_fill(hits > 0, float("-inf"))


def _finish(hyps: list[Hypothesis], history: Tensor, attn_hist: Tensor | None, row: int,
            raw: float, t: int, alpha: float) -> None:
    """Row `row` of the beam ends at step t with summed log-probability `raw`."""
    hyps.append(Hypothesis(history[row].tolist(), raw / length_penalty(t, alpha), raw,
                           attn_hist[row] if attn_hist is not None else None))


def _finish_alive(hyps: list[Hypothesis], history: Tensor, attn_hist: Tensor | None, a: int,
                  k: int, raw_scores: list[float], t: int, alpha: float) -> None:
    """Sentence row-group `a` reached its length limit: its alive beams end here (a
    -inf one only where nothing finished, so every sentence has a hypothesis)."""
    for j, raw in enumerate(raw_scores[:k]):
        if math.isfinite(raw) or not hyps:
            _finish(hyps, history, attn_hist, a * k + j, raw, t, alpha)


def _allowed(lp: Tensor, banned: Sequence[int], history: Tensor, no_repeat_ngram: int
             ) -> Tensor:
    """Log-probabilities with banned tokens and repeated n-grams set to -inf."""
    if banned:
        lp[:, list(banned)] = float("-inf")
    if no_repeat_ngram:
        lp = ban_repeated_ngrams(lp, history, no_repeat_ngram)
    return lp


def _grow_attention(attn_hist: Tensor | None, attention: Callable[[Any], Tensor | None] | None,
                    state: Any) -> Tensor | None:
    """The attention history (rows, t, S) with this step's weights appended."""
    step_attn = attention(state) if attention is not None else None  # (rows, S)
    if step_attn is None:
        return attn_hist
    step_attn = step_attn.float()[:, None]
    return step_attn if attn_hist is None else torch.cat([attn_hist, step_attn], 1)


def _rows(x: Tensor | None, index: Tensor) -> Tensor | None:
    return None if x is None else x[index]


def _may_improve(done_hyps: list[Hypothesis], best_alive: float, n_best: int, alpha: float,
                 horizon: int) -> bool:
    """Whether a sentence stays in the search: fewer than n_best finished hypotheses, or
    its best alive one, length-penalised at `horizon`, could still beat the n-th."""
    done = sorted((h.score for h in done_hyps), reverse=True)
    return len(done) < n_best or done[n_best - 1] < best_alive / length_penalty(horizon, alpha)


@torch.no_grad()
def beam_search(model: Any, batch: dict[str, Tensor], *, beam_size: int = 5, n_best: int = 1,
                max_len: int | Sequence[int] = 100, eos: int = EOS, alpha: float = 0.0,
                no_repeat_ngram: int = 0, banned: Sequence[int] = (),
                attention: Callable[[Any], Tensor | None] | None = None,
                stop: str = "early") -> list[list[Hypothesis]]:
    """The n_best hypotheses of every sentence of `batch`, best first.

    max_len: one limit for all sentences or one per sentence (length_limits);
    attention: optional state -> (rows, S) weights of the last step (e.g.
    Seq2Seq.attention_weights), kept per hypothesis for display.
    """
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
    if stop not in STOPS:
        raise ValueError(f"stop must be one of {', '.join(STOPS)}, got {stop!r}")
    k = beam_size
    reorder_within = getattr(model, "reorder_within_sources", model.reorder)
    state, tokens = model.start(batch)
    n = tokens.shape[0]
    limits = [max_len] * n if isinstance(max_len, int) else list(max_len)
    device = tokens.device
    rows = torch.arange(n, device=device).repeat_interleave(k)
    state, tokens = model.reorder(state, rows), tokens[rows]
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the first step extends one beam only
    history = torch.zeros(n * k, 0, dtype=torch.long, device=device)
    attn_hist: Tensor | None = None
    active = list(range(n))  # sentence ids of the row groups still in the batch
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    banned = list(banned)
    t = 0
    while active:
        lp, state = model.step(tokens, state)  # (A*K, V)
        lp = _allowed(lp.float(), banned, history, no_repeat_ngram)
        attn_hist = _grow_attention(attn_hist, attention, state)  # (A*K, t+1, S)
        t += 1
        vocab = lp.shape[1]
        cand = (scores.view(-1, 1) + lp).view(len(active), k * vocab)
        top, ids = cand.topk(min(2 * k, k * vocab), dim=1)  # (A, 2K)
        parent = ids // vocab + torch.arange(len(active), device=device)[:, None] * k
        tok = ids % vocab
        is_eos = tok == eos
        # finished: EOS candidates among the first K ranks
        for a, j in (is_eos[:, :k] & torch.isfinite(top[:, :k])).nonzero().tolist():
            _finish(finished[active[a]], history, attn_hist, int(parent[a, j]),
                    float(top[a, j]), t, alpha)
        # alive: the K best non-EOS candidates (a stable sort puts them first)
        keep = torch.sort(is_eos.to(torch.uint8), dim=1, stable=True).indices[:, :k]
        scores, parent, tok = top.gather(1, keep), parent.gather(1, keep), tok.gather(1, keep)
        history = torch.cat([history[parent.view(-1)], tok.view(-1, 1)], 1)  # (A*K, t)
        attn_hist = _rows(attn_hist, parent.view(-1))
        still = []
        best_alive = scores[:, 0].tolist()
        for a, s in enumerate(active):
            if t >= limits[s]:  # alive beams end here, as greedy does at max_len
                _finish_alive(finished[s], history, attn_hist, a, k, scores[a].tolist(), t,
                              alpha)
            elif _may_improve(finished[s], best_alive[a], n_best, alpha,
                              limits[s] if stop == "exact" else t + 1):
                still.append(a)
        same_sentences = len(still) == len(active)
        if not same_sentences:
            keep_rows = (torch.tensor(still, dtype=torch.long, device=device)[:, None] * k
                         + torch.arange(k, device=device)).view(-1)
            parent, tok, scores = parent[still], tok[still], scores[still]
            history = history[keep_rows]
            attn_hist = _rows(attn_hist, keep_rows)
            active = [active[a] for a in still]
        if active:  # while no sentence left, each row stays with its sentence
            state = (reorder_within(state, parent.view(-1)) if same_sentences
                     else model.reorder(state, parent.view(-1)))
            tokens = tok.view(-1)
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:n_best] for hyps in finished]
