"""Layers: exact adaptive softmax / embedding, the peephole LSTM, make_rnn, fast tanh."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqtool.layers.adaptive import AdaptiveEmbedding, AdaptiveSoftmax
from seqtool.layers.rnn import CELLS, PeepholeLSTM, fast_dropout, make_rnn

VOCAB, DIM = 40, 16


def _softmax(cutoffs: tuple[int, ...], tied: bool) -> AdaptiveSoftmax:
    torch.manual_seed(0)
    emb = AdaptiveEmbedding(VOCAB, DIM, cutoffs, div_value=2.0)
    out = AdaptiveSoftmax(VOCAB, DIM, cutoffs, div_value=2.0, tie=emb if tied else None)
    with torch.no_grad():  # non-trivial cluster vectors and biases
        for p in out.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return out


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("cutoffs", [(), (8, 20)])
def test_adaptive_softmax_rows_sum_to_one(cutoffs, tied):
    sm = _softmax(cutoffs, tied)
    h = torch.randn(7, DIM)
    lp = sm.log_prob(h)
    assert lp.shape == (7, VOCAB)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(7), atol=1e-5)
    assert torch.isfinite(lp).all()


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("cutoffs", [(), (8, 20)])
def test_adaptive_softmax_nll_matches_log_prob(cutoffs, tied):
    sm = _softmax(cutoffs, tied)
    h = torch.randn(12, DIM)
    # targets from every cluster, including both ends of each
    t = torch.tensor([0, 7, 8, 19, 20, 39, 3, 10, 25, 1, 15, 30])
    nll = sm.nll(h, t)
    expected = -sm.log_prob(h).gather(1, t[:, None])[:, 0]
    assert nll.shape == (12,)
    assert torch.allclose(nll, expected, atol=1e-5)


def test_adaptive_softmax_tied_shares_embedding_weights():
    emb = AdaptiveEmbedding(VOCAB, DIM, (8, 20), div_value=2.0)
    tied = AdaptiveSoftmax(VOCAB, DIM, (8, 20), div_value=2.0, tie=emb)
    own = {id(p) for p in tied.parameters()}
    assert not own & {id(p) for p in emb.parameters()}  # not registered twice
    h = torch.randn(3, DIM)
    before = tied.log_prob(h)
    with torch.no_grad():
        emb.tables[2].weight.add_(torch.randn_like(emb.tables[2].weight))  # a tail table
    assert not torch.allclose(before[:, 20:], tied.log_prob(h)[:, 20:])


def test_adaptive_softmax_bad_cutoffs():
    with pytest.raises(ValueError, match="cutoffs"):
        AdaptiveSoftmax(VOCAB, DIM, (20, 8))


def test_adaptive_embedding_shape_and_clusters():
    torch.manual_seed(0)
    emb = AdaptiveEmbedding(VOCAB, DIM, (8, 20), div_value=2.0)
    assert [t.weight.shape for t in emb.tables] == [(8, 16), (12, 8), (20, 4)]
    ids = torch.tensor([[0, 8, 20], [7, 19, 39]])  # (T=2, B=3)
    out = emb(ids)
    assert out.shape == (2, 3, DIM)
    # each id reads its own cluster's table (offset by the cluster start), projected up
    assert torch.allclose(out[0, 0], emb.tables[0].weight[0])
    assert torch.allclose(out[0, 1], emb.projs[1](emb.tables[1].weight[0]))
    assert torch.allclose(out[1, 1], emb.projs[1](emb.tables[1].weight[11]))
    assert torch.allclose(out[1, 2], emb.projs[2](emb.tables[2].weight[19]))
    # changing one cluster's table changes exactly that cluster's outputs
    with torch.no_grad():
        emb.tables[1].weight.add_(1.0)
    after = emb(ids)
    changed = ~torch.isclose(after, out).all(-1)
    assert changed.tolist() == [[False, True, False], [False, True, False]]


def test_adaptive_embedding_vector_does_not_depend_on_the_batch():
    """A tail token's vector is the same bits alone and among other tail tokens (the
    batched `predict` equals one prompt at a time only so), the shipped LM's shape."""
    torch.manual_seed(0)
    emb = AdaptiveEmbedding(3000, 512, cutoffs=(200, 1000), div_value=4.0).eval()
    ids = torch.tensor([5, 300, 1500, 301, 999, 2, 2999, 600, 1200, 210, 2500, 700, 40])
    with torch.no_grad():
        together = emb(ids[:, None])[:, 0]  # (N, 512)
        for i in range(len(ids)):
            assert torch.equal(emb(ids[i:i + 1, None])[0, 0], together[i]), int(ids[i])
            assert torch.equal(emb(ids[i:i + 3, None])[0, 0], together[i]), int(ids[i])


def test_adaptive_embedding_without_cutoffs_is_an_embedding():
    emb = AdaptiveEmbedding(VOCAB, DIM)
    ids = torch.randint(0, VOCAB, (5, 2))
    assert torch.equal(emb(ids), emb.tables[0].weight[ids])


# --------------------------------------------------------------------------- peephole


def _copy_from_lstm(peep: PeepholeLSTM, lstm: nn.LSTM) -> None:
    dirs = 2 if lstm.bidirectional else 1
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            for d in range(dirs):
                k = layer * dirs + d
                sfx = f"l{layer}" + ("_reverse" if d else "")
                peep.w_ih[k].copy_(getattr(lstm, f"weight_ih_{sfx}"))
                peep.w_hh[k].copy_(getattr(lstm, f"weight_hh_{sfx}"))
                b_ih, b_hh = getattr(lstm, f"bias_ih_{sfx}"), getattr(lstm, f"bias_hh_{sfx}")
                peep.bias[k].copy_(b_ih + b_hh)
                peep.peep[k].zero_()


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (2, True)])
def test_peephole_with_zero_peepholes_equals_nn_lstm(layers, bidirectional):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 8, layers, bidirectional=bidirectional).eval()
    peep = PeepholeLSTM(5, 8, layers, bidirectional=bidirectional).eval()
    _copy_from_lstm(peep, lstm)
    dirs = 2 if bidirectional else 1
    x = torch.randn(6, 3, 5)
    h0 = torch.randn(layers * dirs, 3, 8)
    c0 = torch.randn(layers * dirs, 3, 8)
    for state in (None, (h0, c0)):
        want, (wh, wc) = lstm(x, state)
        got, (gh, gc) = peep(x, state)
        assert got.shape == (6, 3, 8 * dirs)
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(gh, wh, atol=1e-5)
        assert torch.allclose(gc, wc, atol=1e-5)


def test_peephole_matches_manual_formula():
    torch.manual_seed(0)
    cell = PeepholeLSTM(3, 4)
    with torch.no_grad():
        cell.peep[0].copy_(torch.randn(3, 4))
        cell.bias[0].copy_(torch.randn(16))
    x = torch.randn(1, 2, 3)
    h, c = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    out, (h1, c1) = cell(x, (h, c))

    s = torch.sigmoid
    w_ih, w_hh, b = cell.w_ih[0], cell.w_hh[0], cell.bias[0]
    p_i, p_f, p_o = cell.peep[0]
    z = x[0] @ w_ih.t() + h[0] @ w_hh.t() + b
    zi, zf, zg, zo = z.chunk(4, dim=1)
    i = s(zi + p_i * c[0])
    f = s(zf + p_f * c[0])
    c_new = f * c[0] + i * torch.tanh(zg)
    o = s(zo + p_o * c_new)
    h_new = o * torch.tanh(c_new)
    assert torch.allclose(c1[0], c_new, atol=1e-6)
    assert torch.allclose(h1[0], h_new, atol=1e-6)
    assert torch.allclose(out[0], h_new, atol=1e-6)
    # the peepholes matter: zeroing them changes the output
    with torch.no_grad():
        cell.peep[0].zero_()
    assert not torch.allclose(cell(x, (h, c))[0], out)


def test_peephole_bidirectional_shapes():
    cell = PeepholeLSTM(5, 6, num_layers=2, bidirectional=True)
    out, (h, c) = cell(torch.randn(4, 3, 5))
    assert out.shape == (4, 3, 12)
    assert h.shape == c.shape == (4, 3, 6)
    cell = PeepholeLSTM(5, 6, num_layers=1, bidirectional=True)
    # the backward direction's first output depends on the last input
    x = torch.randn(4, 3, 5)
    y = x.clone()
    y[-1] += 1.0
    a, b = cell.eval()(x)[0], cell(y)[0]
    assert not torch.allclose(a[0, :, 6:], b[0, :, 6:])
    assert torch.allclose(a[0, :, :6], b[0, :, :6])  # forward direction: causal


def test_peephole_gradcheck():
    torch.manual_seed(0)
    cell = PeepholeLSTM(3, 4).double()
    peep = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w_hh = cell.w_hh[0].detach().clone().requires_grad_(True)
    x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, 2, 4, dtype=torch.float64, requires_grad=True)

    def f(x, h0, c0, peep, w_hh):
        params = {"peep.0": peep, "w_hh.0": w_hh}
        out, (h, c) = torch.func.functional_call(cell, params, (x, (h0, c0)))
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, h0, c0, peep, w_hh), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_make_rnn_every_cell(cell):
    torch.manual_seed(0)
    rnn = make_rnn(cell, 5, 8, num_layers=2, dropout=0.1)
    out, state = rnn(torch.randn(6, 3, 5))
    assert out.shape == (6, 3, 8)
    # state is carried: a second call with it runs and keeps the shapes
    out2, _ = rnn(torch.randn(2, 3, 5), state)
    assert out2.shape == (2, 3, 8)


def test_make_rnn_unknown_cell():
    with pytest.raises(ValueError, match="unknown cell 'lsmt'.*lstm"):
        make_rnn("lsmt", 5, 8)


def test_bahdanau_weights_are_the_textbook_formula():
    """softmax_s(v . tanh(W_q q + W_k m_s)), though computed with sigmoids and doubled
    keys (layers/attention.py): the same weights and context, and the same gradients."""
    from seqtool.layers.attention import make_attention

    torch.manual_seed(0)
    att = make_attention("bahdanau", 6, 4).double()
    memory = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    query = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(5, 3, dtype=torch.bool)
    mask[3:, 1] = False

    def textbook(q, m):
        e = torch.tanh(att.query_layer(q)[:, None] + att.key_layer(m)[None]) @ \
            att.energy_layer.weight[0]  # (T, S, B)
        w = torch.softmax(e.masked_fill(~mask, float("-inf")), 1)
        return torch.einsum("tsb,sbk->tbk", w, m), w.transpose(1, 2)

    ours, ref = att(query, att.keys(memory), memory, mask), textbook(query, memory)
    for a, b in zip(ours, ref, strict=False):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    for t in range(2):  # one step at a time, the decoder's path
        step = att(query[t], att.keys(memory), memory, mask)
        torch.testing.assert_close(step[0], ref[0][t], atol=1e-12, rtol=0)
    g = torch.randn_like(ref[0])
    params = [query, memory, *att.parameters()]
    for a, b in zip(torch.autograd.grad((ours[0] * g).sum(), params),
                    torch.autograd.grad((ref[0] * g).sum(), params), strict=False):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_attention_step_scores_same_without_gradients(kind):
    """Decoding (no gradients) scores one step by multiply-and-sum instead of a matmul,
    which keeps no per-shape oneDNN state in bf16; the scores must not change."""
    from seqtool.layers.attention import make_attention

    torch.manual_seed(0)
    att = make_attention(kind, 8, 8)
    memory, query = torch.randn(5, 3, 8), torch.randn(3, 8)
    keys = att.keys(memory)
    with torch.enable_grad():
        ref = att.scores(query, keys)
    with torch.no_grad():
        ours = att.scores(query, keys)
    torch.testing.assert_close(ours, ref.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(att.scores(query[None], keys)[0], ref)  # the (T, B, Q) path


def test_fast_dropout_statistics_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(200, 300, requires_grad=True)
    y = fast_dropout(x, 0.3, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask / 0.7)/dx = mask / 0.7
    assert fast_dropout(x, 0.3, False) is x and fast_dropout(x, 0.0, True) is x
    assert fast_dropout(x.bfloat16(), 0.5, True).dtype == torch.bfloat16


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layerwise_training_path_is_the_same_stack(cell, bidirectional, monkeypatch):
    """With dropout between layers, CPU training runs one fused call per layer; with
    the masks switched off it computes exactly what torch's own stacked call does."""
    import seqtool.layers.rnn as rnn_mod

    torch.manual_seed(0)
    rnn = make_rnn(cell, 6, 5, num_layers=3, dropout=0.4, bidirectional=bidirectional)
    x = torch.randn(7, 4, 6)
    state = torch.randn(3 * (2 if bidirectional else 1), 4, 5)
    hx = (state, torch.randn_like(state)) if cell == "lstm" else state
    rnn.train()
    torch.manual_seed(1)
    a, _ = rnn(x, hx)
    torch.manual_seed(2)
    assert not torch.allclose(a, rnn(x, hx)[0])  # dropout is on, masks differ
    monkeypatch.setattr(rnn_mod, "fast_dropout", lambda x, p, training=True: x)
    out, new = rnn(x, hx)
    rnn.eval()  # torch's own stacked call, no dropout
    ref, ref_new = rnn(x, hx)
    assert torch.allclose(out, ref, atol=1e-6)
    got_all, want_all = (new, ref_new) if cell == "lstm" else ([new], [ref_new])
    for got, want in zip(got_all, want_all, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    rnn.train()
    out.sum().backward()
    assert all(p.grad is not None for p in rnn.parameters())
