"""Greedy decoding and sampling, written once against the step protocol
(models/base.py). Any model with start/step/reorder works unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Decoded:
    tokens: list[list[int]]  # one list of generated ids per batch row (EOS excluded)
    scores: list[float]  # summed log-probability of each row's tokens (model's distribution)


def filter_log_probs(lp: Tensor, top_k: int = 0, top_p: float = 1.0,
                     temperature: float = 1.0) -> Tensor:
    """Temperature, then keep the top-k tokens and the smallest set with mass >= top_p.
    Returns renormalised log-probabilities (B, V); removed tokens get -inf."""
    lp = torch.log_softmax(lp / temperature, dim=-1)
    if top_k and top_k < lp.shape[-1]:
        kth = lp.topk(top_k, dim=-1).values[:, -1:]
        lp = lp.masked_fill(lp < kth, float("-inf"))
    if top_p < 1.0:
        sorted_lp, order = lp.sort(dim=-1, descending=True)
        cum = sorted_lp.exp().cumsum(-1)
        remove = cum - sorted_lp.exp() >= top_p  # keep the token that crosses top_p
        lp = lp.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return torch.log_softmax(lp, dim=-1)


Generators = torch.Generator | Sequence[torch.Generator] | None


def sample_rows(probs: Tensor, generator: Generators) -> Tensor:
    """One token per row of `probs` (B, V), drawn on the CPU. A sequence of n generators
    splits the rows into n equal consecutive groups, each drawn with its own: a batch
    of prompts then samples exactly as each prompt would alone (the same draws from
    the same generator state)."""
    probs = probs.cpu()
    if generator is None or isinstance(generator, torch.Generator):
        return torch.multinomial(probs, 1, generator=generator)[:, 0]
    per, rest = divmod(probs.shape[0], len(generator))
    assert rest == 0 and per > 0, (probs.shape, len(generator))
    return torch.cat([torch.multinomial(probs[i * per:(i + 1) * per], 1, generator=g)[:, 0]
                      for i, g in enumerate(generator)])


@torch.no_grad()
def decode(model, batch: dict[str, Tensor], max_len: int, *, eos: int | None = None,
           sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           banned: tuple[int, ...] = (), generator: Generators = None) -> Decoded:
    """Greedy (sample=False) or sampled decoding of up to `max_len` tokens per row;
    `generator` may be one per group of rows (sample_rows)."""
    state, tokens = model.start(batch)
    rows = tokens.shape[0]
    out = torch.zeros(rows, max_len, dtype=torch.long)
    scores = torch.zeros(rows)
    lengths = torch.full((rows,), max_len, dtype=torch.long)
    finished = torch.zeros(rows, dtype=torch.bool)
    for t in range(max_len):
        lp, state = model.step(tokens, state)  # (B, V)
        lp = lp.float()
        if banned:
            lp[:, list(banned)] = float("-inf")
        if sample:
            probs = filter_log_probs(lp, top_k, top_p, temperature).exp()
            tokens = sample_rows(probs, generator).to(lp.device)
        else:
            tokens = lp.argmax(-1)
        step_lp = lp.gather(1, tokens[:, None])[:, 0].cpu()
        scores += torch.where(finished, 0.0, step_lp)
        out[:, t] = tokens.cpu()
        if eos is not None:
            newly = (tokens.cpu() == eos) & ~finished
            lengths[newly] = t
            finished |= newly
            if bool(finished.all()):
                break
    return Decoded([out[i, : lengths[i]].tolist() for i in range(rows)], scores.tolist())
