"""The fused input-feeding decoder (layers/fused_decoder.py) computes what the
step-by-step autograd path computes: the same outputs and the same gradient for
every parameter and input, with padding and dropout, in fp32 and under bf16."""

from __future__ import annotations

import pytest
import torch

from seqtool.config import Seq2SeqModelConfig
from seqtool.layers.fused_decoder import FusedFeedingGRU, fusable
from seqtool.models.seq2seq import Seq2Seq

SRC_V, TGT_V = 40, 30


def model(**over) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = Seq2SeqModelConfig(**{"emb_dim": 12, "enc_hidden": 8, "dec_hidden": 16,
                                "dropout": 0.0, **over})
    return Seq2Seq(cfg, (SRC_V, TGT_V))


def batch(B: int = 5, S: int = 7, T: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, SRC_V, (S, B), generator=g)
    tgt = torch.randint(4, TGT_V, (T, B), generator=g)
    sl = torch.tensor([S, 3, 5, 1, S][:B])  # padded rows of several lengths
    src[torch.arange(S)[:, None] >= sl[None]] = 0
    tgt[torch.arange(T)[:, None] >= torch.tensor([T, 2, 4, 6, 1][:B])[None]] = 0
    return {"src": src, "tgt": tgt, "src_len": sl, "src_mask": src != 0}


def loss_and_grads(m: Seq2Seq, fused: bool, precision: str = "fp32"):
    m.zero_grad()
    m.decoder.use_fused = fused
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        res = m.loss(batch())
    res.loss_sum.backward()
    return res.loss_sum.detach(), {n: p.grad.clone() for n, p in m.named_parameters()
                                   if p.grad is not None}


def test_the_shipped_configurations_take_the_fused_path():
    assert fusable(model().decoder)  # GRU, Bahdanau, input feeding: the presets
    assert not fusable(model(attention="dot", enc_hidden=8, dec_hidden=16).decoder)
    assert not fusable(model(cell="lstm").decoder)
    assert not fusable(model(peeky=True).decoder)
    assert not fusable(model(dec_layers=2).decoder)
    assert not fusable(model(input_feeding=False).decoder)


def test_fused_equals_step_by_step_in_fp32():
    m = model()
    loss_a, ga = loss_and_grads(m, fused=False)
    loss_b, gb = loss_and_grads(m, fused=True)
    assert torch.allclose(loss_a, loss_b, rtol=1e-5)
    assert ga.keys() == gb.keys() and len(ga) == len(list(m.parameters()))
    for name in ga:
        assert torch.allclose(ga[name], gb[name], rtol=1e-4, atol=1e-6), name


def test_fused_close_to_step_by_step_under_bf16():
    m = model()
    loss_a, ga = loss_and_grads(m, fused=False, precision="bf16")
    loss_b, gb = loss_and_grads(m, fused=True, precision="bf16")
    assert torch.allclose(loss_a, loss_b, rtol=2e-2)
    for name in ga:  # bf16 rounding: compare as vectors
        cos = torch.nn.functional.cosine_similarity(ga[name].flatten(), gb[name].flatten(), 0)
        assert cos > 0.99, (name, float(cos))


@pytest.mark.parametrize("p_drop", [0.0, 0.4])
def test_fused_gradcheck_with_and_without_dropout(p_drop):
    """Every input's gradient against finite differences (fp64); with dropout the
    mask is drawn again from the same seed at each evaluation."""
    torch.manual_seed(0)
    T, B, S, E, H, K, A = 3, 2, 4, 3, 4, 5, 4
    d = torch.float64
    mask = torch.ones(S, B, dtype=torch.bool)
    mask[2:, 1] = False  # the second sentence has 2 source tokens
    inputs = [torch.randn(T, B, E, dtype=d), torch.randn(B, H, dtype=d) * 0.5,
              torch.randn(S, B, A, dtype=d), torch.randn(S, B, K, dtype=d), mask,
              torch.randn(3 * H, E + H, dtype=d) * 0.5, torch.randn(3 * H, H, dtype=d) * 0.5,
              torch.randn(3 * H, dtype=d) * 0.1, torch.randn(3 * H, dtype=d) * 0.1,
              torch.randn(A, H, dtype=d) * 0.5, torch.randn(1, A, dtype=d),
              torch.randn(H, H + K, dtype=d) * 0.5, torch.randn(H, dtype=d) * 0.1]
    for x in inputs:
        x.requires_grad_(x.dtype == d)

    def run(*args):
        torch.manual_seed(7)
        return FusedFeedingGRU.apply(*args, p_drop)

    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-5)
    out = run(*inputs)
    if p_drop:  # dropout changed something, and the same seed repeats it
        assert not torch.allclose(out, FusedFeedingGRU.apply(*inputs, 0.0))
    assert torch.equal(out, run(*inputs))


def test_fused_training_mode_applies_dropout_only_in_training():
    m = model(dropout=0.5)
    b = batch()
    m.train()
    torch.manual_seed(3)
    a = m.loss(b).loss_sum
    torch.manual_seed(4)
    assert not torch.allclose(a, m.loss(b).loss_sum)  # a different mask
    m.eval()
    e1, e2 = m.loss(b).loss_sum, m.loss(b).loss_sum
    assert torch.equal(e1, e2)
    m.decoder.use_fused = False
    assert torch.allclose(e1, m.loss(b).loss_sum, rtol=1e-5)  # eval: no dropout either way
