"""The decoding step of the input-feeding GRU + Bahdanau decoder
(layers/fused_step.py) computes what the general step computes: the same outputs,
attention and next state (fp64 exactly, bf16 closely), the same beam search
results, weights re-cast when they change; other decoders keep the general step."""

from __future__ import annotations

import pytest
import torch

import seqtool.layers.decoder as decoder_module
from seqtool.config import Seq2SeqModelConfig
from seqtool.layers.fused_step import step_fusable
from seqtool.models.seq2seq import Seq2Seq
from seqtool.search import beam_search

SRC_V, TGT_V = 40, 30


def model(**over) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = Seq2SeqModelConfig(**{"emb_dim": 12, "enc_hidden": 8, "dec_hidden": 16,
                                "dropout": 0.0, **over})
    return Seq2Seq(cfg, (SRC_V, TGT_V)).eval()


def source(B: int = 4, S: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, SRC_V, (S, B), generator=g)
    sl = torch.tensor([S, 3, 5, 1][:B])
    src[torch.arange(S)[:, None] >= sl[None]] = 0
    return {"src": src, "src_len": sl, "src_mask": src != 0}


def run_steps(m: Seq2Seq, fused: bool, steps: int = 5):
    """Outputs and attention of `steps` decoding steps fed fixed tokens."""
    state = m.encode(source())
    if fused:
        state = m.decoder.for_decoding(state)
        assert "mem_b" in state and "memory" not in state
    g = torch.Generator().manual_seed(2)
    outs, attn = [], []
    for _ in range(steps):
        tokens = torch.randint(4, TGT_V, (4,), generator=g)
        out, state = m.decoder.step(m.tgt_embed(tokens), state)
        outs.append(out.float())
        attn.append(state["attn"].float())
    return torch.stack(outs), torch.stack(attn), state["hidden"].float()


@torch.no_grad()
def test_decoding_step_equals_the_general_step_in_fp64():
    m = model().double()
    a, b = run_steps(m, False), run_steps(m, True)
    for x, y in zip(a, b, strict=True):
        assert torch.allclose(x, y, rtol=0, atol=1e-12)


@torch.no_grad()
def test_decoding_step_close_to_the_general_step_under_bf16():
    m = model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = run_steps(m, False), run_steps(m, True)
    for x, y in zip(a, b, strict=True):
        assert torch.allclose(x, y, atol=3e-2), float((x - y).abs().max())


@torch.no_grad()
def test_beam_search_finds_the_same_with_either_step(monkeypatch):
    m = model().double()
    fused = beam_search(m, source(), beam_size=3, n_best=2, max_len=8,
                        attention=m.attention_weights)
    monkeypatch.setattr(decoder_module, "for_decoding", lambda decoder, state: state)
    general = beam_search(m, source(), beam_size=3, n_best=2, max_len=8,
                          attention=m.attention_weights)
    for a, b in zip(fused, general, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-12)
        for x, y in zip(a, b, strict=True):
            assert torch.allclose(x.attention, y.attention, atol=1e-12)


@torch.no_grad()
def test_weights_are_cast_again_when_they_change():
    m = model().double()
    run_steps(m, True)  # caches the weights
    m.decoder.rnn.weight_hh_l0.mul_(1.5)
    m.decoder.combine.bias.add_(0.3)
    a, b = run_steps(m, False), run_steps(m, True)
    assert torch.allclose(a[0], b[0], rtol=0, atol=1e-12)


def test_other_decoders_and_training_keep_the_general_step():
    from seqtool.layers.int8 import quantize_model

    m = model()
    state = m.encode(source())
    assert m.decoder.for_decoding(state) is state  # gradients on: training's layout
    with torch.no_grad():
        assert "mem_b" in m.decoder.for_decoding(m.encode(source()))
        m.train()
        assert m.decoder.for_decoding(m.encode(source())).keys() == state.keys()
        for over in ({"cell": "lstm"}, {"attention": "general"}, {"dec_layers": 2}):
            other = model(**over)
            assert not step_fusable(other.decoder)
            assert "mem_b" not in other.decoder.for_decoding(other.encode(source()))
        q = quantize_model(model())
        assert not step_fusable(q.decoder)
        assert "mem_b" not in q.decoder.for_decoding(q.encode(source()))
