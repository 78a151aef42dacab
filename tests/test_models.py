"""The LM's step protocol, learning, and decoding written against the protocol."""

from __future__ import annotations

import math

import pytest
import torch

from seqtool.config import LMModelConfig
from seqtool.decoding import decode, filter_log_probs
from seqtool.models import build_model
from seqtool.models.lm import RNNLM, count_parameters

VOCAB = 30


def tiny_lm(**kw) -> RNNLM:
    torch.manual_seed(0)
    cfg = LMModelConfig(**{"cell": "lstm", "emb_dim": 16, "hidden": 16, "layers": 2,
                           "dropout": 0.2, "tie_weights": True, **kw})
    return build_model("lm", cfg, VOCAB)


MODELS = {
    "lstm": {},
    "gru-untied": {"cell": "gru", "tie_weights": False},
    "peephole": {"cell": "peephole", "layers": 1},
    "rnn_tanh-proj": {"cell": "rnn_tanh", "hidden": 24},  # hidden != emb: projection
    "adaptive": {"softmax": "adaptive", "cutoffs": (8, 20), "div_value": 2.0},
}


@pytest.mark.parametrize("name", MODELS)
def test_step_protocol_equals_full_sequence(name):
    model = tiny_lm(**MODELS[name]).eval()
    ids = torch.randint(4, VOCAB, (7, 3))  # (T, B)
    full, _ = model.log_probs(ids)  # (T, B, V)
    assert full.shape == (7, 3, VOCAB)
    assert torch.allclose(full.exp().sum(-1), torch.ones(7, 3), atol=1e-5)
    # start() with a one-token prompt, then feed the sequence one token at a time
    state, tok = model.start({"prompt": ids[:1]})
    assert torch.equal(tok, ids[0])
    for t in range(7):
        lp, state = model.step(ids[t], state)
        assert lp.shape == (3, VOCAB)
        assert torch.allclose(lp, full[t], atol=1e-5), f"step {t}"
    # a longer prompt: start() consumes all but its last token
    state, tok = model.start({"prompt": ids[:4]})
    lp, _ = model.step(tok, state)
    assert torch.allclose(lp, full[3], atol=1e-5)


def test_loss_matches_log_probs_and_carries_detached_state():
    model = tiny_lm(softmax="adaptive", cutoffs=(8, 20), div_value=2.0).eval()
    ids = torch.randint(0, VOCAB, (6, 2))
    tgt = torch.randint(0, VOCAB, (6, 2))
    res = model.loss({"input": ids, "target": tgt})
    lp, _ = model.log_probs(ids)
    assert res.tokens == 12
    assert torch.allclose(res.loss_sum, -lp.gather(2, tgt[..., None]).sum(), atol=1e-4)
    assert all(not t.requires_grad for t in res.carry)
    # the carry continues the sequence: two windows == one long window
    ids2 = torch.randint(0, VOCAB, (6, 2))
    res2 = model.loss({"input": ids2, "target": tgt}, res.carry)
    lp_both, _ = model.log_probs(torch.cat([ids, ids2]))
    assert torch.allclose(res2.loss_sum, -lp_both[6:].gather(2, tgt[..., None]).sum(), atol=1e-4)


@pytest.mark.parametrize("name", ["lstm", "adaptive"])
def test_overfits_one_batch(name):
    model = tiny_lm(**MODELS[name], dropout=0.0)
    torch.manual_seed(1)
    batch = {"input": torch.randint(0, VOCAB, (8, 4)),
             "target": torch.randint(0, VOCAB, (8, 4))}
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    first = None
    for _ in range(100):
        res = model.loss(batch)
        loss = res.loss_sum / res.tokens
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > math.log(VOCAB) - 0.5  # started near uniform
    final = float(loss.detach())
    assert final < 0.3, f"loss {final:.3f} after 100 steps (from {first:.3f})"


def test_count_parameters_counts_shared_once():
    tied, untied = tiny_lm(), tiny_lm(tie_weights=False)
    total = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert sum(count_parameters(tied).values()) == total(tied)
    assert sum(count_parameters(untied).values()) == total(untied)
    assert count_parameters(untied)["out"] - count_parameters(tied)["out"] == VOCAB * 16
    assert count_parameters(tiny_lm(cell="gru"))["rnn"] < count_parameters(tied)["rnn"]


# --------------------------------------------------------------------------- decoding


def test_greedy_decode_equals_step_by_step_argmax():
    model = tiny_lm().eval()
    prompt = torch.randint(4, VOCAB, (3, 2))
    out = decode(model, {"prompt": prompt}, max_len=6)
    state, tok = model.start({"prompt": prompt})
    want, score = [], torch.zeros(2)
    for _ in range(6):
        lp, state = model.step(tok, state)
        tok = lp.argmax(-1)
        score += lp.gather(1, tok[:, None])[:, 0]
        want.append(tok)
    assert out.tokens == torch.stack(want, 1).tolist()
    assert out.scores == pytest.approx(score.tolist(), abs=1e-4)


def test_decode_stops_rows_at_eos():
    model = tiny_lm().eval()
    prompt = torch.randint(4, VOCAB, (2, 3))
    free = decode(model, {"prompt": prompt}, max_len=5)
    eos = free.tokens[0][1]  # row 0's second token: row 0 must stop before it
    out = decode(model, {"prompt": prompt}, max_len=5, eos=eos)
    assert out.tokens[0] == free.tokens[0][: free.tokens[0].index(eos)]
    for row_free, row in zip(free.tokens, out.tokens, strict=False):
        assert eos not in row
        assert row == row_free[: len(row)]


def test_filter_top_k():
    torch.manual_seed(0)
    lp = torch.log_softmax(torch.randn(4, 20), -1)
    out = filter_log_probs(lp, top_k=5)
    kept = torch.isfinite(out)
    assert kept.sum(-1).tolist() == [5] * 4
    assert torch.equal(kept, torch.zeros_like(kept).scatter(1, lp.topk(5).indices, True))
    assert torch.allclose(out.exp().sum(-1), torch.ones(4), atol=1e-6)
    # renormalised: ratios between kept tokens do not change
    assert torch.allclose((out - lp)[kept].view(4, 5).std(-1), torch.zeros(4), atol=1e-5)


def test_filter_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([[0.05, 0.5, 0.25, 0.15, 0.05], [0.9, 0.04, 0.03, 0.02, 0.01]])
    out = filter_log_probs(probs.log(), top_p=0.7)
    assert torch.isfinite(out).tolist() == [[False, True, True, False, False],
                                            [True, False, False, False, False]]
    assert torch.allclose(out.exp()[0, 1:3], torch.tensor([0.5, 0.25]) / 0.75)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2))
    # p just above a set's mass needs one more token
    out = filter_log_probs(probs.log(), top_p=0.76)
    assert torch.isfinite(out)[0].tolist() == [False, True, True, True, False]
    # top_p = 1 keeps everything
    assert torch.isfinite(filter_log_probs(probs.log(), top_p=1.0)).all()


def test_filter_temperature():
    lp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.0]]), -1)
    assert torch.allclose(filter_log_probs(lp, temperature=1.0), lp)
    sharp = filter_log_probs(lp, temperature=0.5).exp()[0]
    flat = filter_log_probs(lp, temperature=2.0).exp()[0]
    assert sharp[0] > lp.exp()[0, 0] > flat[0]


def test_sampling_is_reproducible_with_a_seeded_generator():
    model = tiny_lm().eval()
    prompt = torch.randint(4, VOCAB, (2, 4))

    def run(seed: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(seed)
        return decode(model, {"prompt": prompt}, 8, sample=True, top_k=10, top_p=0.95,
                      temperature=1.5, generator=gen).tokens

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_banned_tokens_are_never_sampled():
    model = tiny_lm().eval()
    banned = (0, 1, 2, 5, 9)
    prompt = torch.randint(4, VOCAB, (1, 64))
    gen = torch.Generator().manual_seed(0)
    out = decode(model, {"prompt": prompt}, 10, sample=True, temperature=5.0,
                 banned=banned, generator=gen)
    seen = {t for row in out.tokens for t in row}
    assert not seen & set(banned)
    assert len(seen) > 10  # sampling at high temperature really spreads out
    greedy = decode(model, {"prompt": prompt}, 10, banned=tuple(range(VOCAB - 1)))
    assert {t for row in greedy.tokens for t in row} == {VOCAB - 1}


def test_reorder_picks_rows():
    model = tiny_lm().eval()
    prompt = torch.randint(4, VOCAB, (5, 3))
    state, tok = model.start({"prompt": prompt})
    index = torch.tensor([2, 0, 0])
    picked = model.reorder(state, index)
    for full, sub in zip(state, picked, strict=False):
        assert torch.equal(sub, full[:, index])
    lp_all, _ = model.step(tok, state)
    lp_picked, _ = model.step(tok[index], picked)
    assert torch.allclose(lp_picked, lp_all[index], atol=1e-6)
