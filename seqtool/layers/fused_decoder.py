"""Teacher forcing through the input-feeding GRU + Bahdanau decoder as one autograd
node with a hand-written backward pass.

Why: with input feeding the decoder runs one time step at a time, and through
autograd every step is some sixty small operations forward and more backward,
each weight gradient a small matrix product per step. Here the forward loop keeps
what the backward needs, the backward loop computes only the gradients that flow
from step to step, and every weight gradient is one large matrix product over all
steps after the loop (the matrix-product sizes this CPU runs fastest). The
embedding part of the GRU's input projection is one product for all steps before
the loop. Matrix products run in the autocast precision (bf16 under
`train.precision = "bf16"`), everything else in fp32.

The mathematics is that of layers/decoder.py for this configuration (one GRU
layer, Bahdanau attention, input feeding, not peeky; PyTorch's GRU gate order
r, z, n):

    gi = W_ih [e_t; f_{t-1}] + b_ih        gh = W_hh h_{t-1} + b_hh
    r = sigmoid(gi_r + gh_r)     z = sigmoid(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n)    h_t = (1 - z) n + z h_{t-1}
    a_s = softmax_s(2v . sigmoid(2 W_q h_t + k_s))  (k = 2 W_k m, computed outside;
                                                  = softmax_s(v . tanh(W_q h_t + W_k m_s)),
                                                  layers/attention.py)
    c_t = sum_s a_s m_s
    f_t = tanh(W_c drop([h_t; c_t]) + b_c)        the output, fed to step t+1

tests/test_layers.py checks outputs and every gradient against the step-by-step
autograd path.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor


def _dtypes(x: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(matrix-product dtype, elementwise dtype): the autocast dtype and fp32 under
    autocast; otherwise fp32 (fp64 for fp64 input, as gradcheck uses)."""
    exact = torch.float64 if x.dtype == torch.float64 else torch.float32
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type), exact
    return exact, exact


def _tanh(x: Tensor) -> Tensor:
    """tanh as 2 sigmoid(2x) - 1, in place on x (torch's CPU tanh is ~6x slower)."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


class FusedFeedingGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, emb: Tensor, h0: Tensor, keys: Tensor, memory: Tensor,
                mask: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                w_q: Tensor, w_v: Tensor, w_c: Tensor, b_c: Tensor, p_drop: float) -> Tensor:
        cd, f32 = _dtypes(emb)
        T, B, E = emb.shape
        H = w_hh.shape[1]
        S, _, K = memory.shape
        A = keys.shape[2]
        new = functools.partial(emb.new_empty, dtype=f32)
        # the weights in the matmul dtype, cast once (backward reuses them)
        w_ih_c, w_hh_c, w_c_c = w_ih.to(cd), w_hh.to(cd), w_c.to(cd)
        w_q_c = w_q.to(cd).mul(2)  # 2 W_q (exact in any float dtype; not in place)
        w_f_t = w_ih_c[:, E:].t()  # feed part (H, 3H)
        w_hh_t, w_q_t, w_c_t = w_hh_c.t(), w_q_c.t(), w_c_c.t()
        v = w_v[0].to(f32).mul(2)  # 2v
        emb_c = emb.to(cd)
        gi_e = torch.addmm(b_ih.to(cd), emb_c.view(T * B, E), w_ih_c[:, :E].t())
        gi_e = gi_e.view(T, B, 3 * H).to(f32)
        keys32 = keys.to(f32)
        mem_b = memory.to(f32).transpose(0, 1).contiguous()  # (B, S, K)
        pad = ~mask  # (S, B)
        b_hh32, b_c32 = b_hh.to(f32), b_c.to(f32)
        drop = None
        if p_drop > 0:
            keep = torch.rand(T, B, H + K, device=emb.device, dtype=f32) >= p_drop
            drop = keep.to(cd).div_(1 - p_drop)
        hs = new(T + 1, B, H)  # h_{t-1} at t
        hs[0] = h0
        hs_c = emb_c.new_empty(T + 1, B, H)  # the same in the matmul dtype
        hs_c[0] = h0
        fs = new(T, B, H)  # the outputs f_t
        fs_c = emb_c.new_zeros(T + 1, B, H)  # f_{t-1} at t (f_{-1} = 0), matmul dtype
        rz, n_all, ghn = new(T, B, 2 * H), new(T, B, H), new(T, B, H)
        es, alphas = new(T, S, B, A), new(T, S, B)
        us = emb_c.new_empty(T, B, H + K)  # the combine layer's input
        for t in range(T):
            gi = torch.add(gi_e[t], torch.mm(fs_c[t], w_f_t))  # fp32 (promoted)
            gh = torch.add(b_hh32, torch.mm(hs_c[t], w_hh_t))  # fp32 (promoted)
            r_z = torch.sigmoid(gi[:, :2 * H].add_(gh[:, :2 * H]), out=rz[t])
            r, z = r_z[:, :H], r_z[:, H:]
            ghn[t] = gh[:, 2 * H:]
            n = _tanh(torch.addcmul(gi[:, 2 * H:], r, ghn[t], out=n_all[t]))
            h = torch.addcmul(n, z, hs[t] - n, out=hs[t + 1])
            hs_c[t + 1] = h
            e = torch.add(keys32, torch.mm(hs_c[t + 1], w_q_t), out=es[t]).sigmoid_()
            score = torch.mv(e.view(S * B, A), v).view(S, B).masked_fill_(pad, float("-inf"))
            alpha = torch.softmax(score, 0)
            alphas[t] = alpha
            u = us[t]
            u[:, :H] = h
            u[:, H:] = torch.bmm(alpha.t().unsqueeze(1), mem_b).squeeze(1)  # context (B, K)
            if drop is not None:
                u.mul_(drop[t])
            f = _tanh(torch.add(b_c32, torch.mm(u, w_c_t), out=fs[t]))
            fs_c[t + 1] = f
        ctx.save_for_backward(emb_c, hs, hs_c, fs, fs_c, rz, n_all, ghn, es, alphas, us,
                              mem_b, v, drop, w_ih_c, w_hh_c, w_q_c, w_c_c)
        ctx.meta = (f32, emb.dtype, keys.dtype, memory.dtype, h0.dtype, w_v.shape)
        return fs  # also saved for backward: autograd guards it against in-place changes

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Any, ...]:
        (emb_c, hs, hs_c, fs, fs_c, rz, n_all, ghn, es, alphas, us, mem_b, v, drop,
         w_ih_c, w_hh_c, w_q_c, w_c_c) = ctx.saved_tensors
        f32, emb_dtype, keys_dtype, mem_dtype, h0_dtype, wv_shape = ctx.meta
        cd = emb_c.dtype
        T, B, E = emb_c.shape
        H = w_hh_c.shape[1]
        _, S, K = mem_b.shape
        A = es.shape[3]
        new = functools.partial(emb_c.new_empty, dtype=f32)
        w_f, w_e = w_ih_c[:, E:], w_ih_c[:, :E]
        dF = grad_out.to(f32)
        d_gi, d_gh = emb_c.new_empty(T, B, 3 * H), emb_c.new_empty(T, B, 3 * H)
        d_q, d_f, d_c = emb_c.new_empty(T, B, A), emb_c.new_empty(T, B, H), new(T, B, K)
        d_score = new(T, S, B)
        d_keys = emb_c.new_zeros(S, B, A, dtype=f32)
        d_feed = emb_c.new_zeros(B, H, dtype=f32)  # into f_t from step t+1's input
        d_h = emb_c.new_zeros(B, H, dtype=f32)  # into h_t from step t+1's GRU
        for t in range(T - 1, -1, -1):
            dfp = torch.ops.aten.tanh_backward(dF[t] + d_feed, fs[t])
            d_f[t] = dfp
            du = torch.mm(d_f[t], w_c_c)  # (B, H + K), matmul dtype
            if drop is not None:
                du.mul_(drop[t])
            dh = torch.add(d_h, du[:, :H])  # fp32
            d_c[t] = du[:, H:]
            alpha = alphas[t]  # (S, B)
            d_alpha = torch.bmm(mem_b, d_c[t].unsqueeze(2)).squeeze(2).t()  # (S, B)
            ds = torch.mul(alpha, d_alpha.sub_((alpha * d_alpha).sum(0)), out=d_score[t])
            d_pre = torch.ops.aten.sigmoid_backward(ds.unsqueeze(2) * v, es[t])  # (S, B, A)
            d_keys.add_(d_pre)
            torch.sum(d_pre, 0, out=d_q[t]) if cd == f32 else d_q[t].copy_(d_pre.sum(0))
            dh.add_(torch.mm(d_q[t], w_q_c))
            r, z = rz[t, :, :H], rz[t, :, H:]
            n, h_prev = n_all[t], hs[t]
            dn_pre = torch.ops.aten.tanh_backward(dh * (1 - z), n)
            gi_t, gh_t = d_gi[t], d_gh[t]
            gi_t[:, :H] = torch.ops.aten.sigmoid_backward(dn_pre * ghn[t], r)
            gi_t[:, H:2 * H] = torch.ops.aten.sigmoid_backward(dh * (h_prev - n), z)
            gi_t[:, 2 * H:] = dn_pre
            gh_t[:, :2 * H] = gi_t[:, :2 * H]
            gh_t[:, 2 * H:] = dn_pre * r
            d_h = torch.addcmul(torch.mm(gh_t, w_hh_c), dh, z, value=1)  # fp32 (promoted)
            d_feed = torch.mm(gi_t, w_f)
        rows = T * B
        gi2, gh2 = d_gi.view(rows, 3 * H), d_gh.view(rows, 3 * H)
        d_emb = torch.mm(gi2, w_e).view(T, B, E).to(emb_dtype)
        d_w_ih = torch.cat([torch.mm(gi2.t(), emb_c.view(rows, E)),
                            torch.mm(gi2.t(), fs_c[:-1].reshape(rows, H))], 1).to(f32)
        d_w_hh = torch.mm(gh2.t(), hs_c[:-1].reshape(rows, H)).to(f32)
        d_w_q = torch.mm(d_q.view(rows, A).t(), hs_c[1:].reshape(rows, H)).to(f32).mul_(2)
        # d/dv of v . tanh(x) = 2 sigmoid(2x) - 1 summed with d_score; the -1 part
        # vanishes, since a softmax's input gradient sums to zero over S
        d_w_v = torch.mv(es.view(-1, A).t(), d_score.view(-1)).mul_(2).view(wv_shape)
        f2 = d_f.view(rows, H)
        d_w_c = torch.mm(f2.t(), us.view(rows, H + K)).to(f32)
        # memory: sum_t alpha_t (S) x dc_t (K) per batch row, one batched product
        d_mem = torch.bmm(alphas.permute(2, 1, 0), d_c.transpose(0, 1))
        return (d_emb, d_h.to(h0_dtype), d_keys.to(keys_dtype),
                d_mem.transpose(0, 1).to(mem_dtype), None, d_w_ih, d_w_hh,
                gi2.sum(0, dtype=f32), gh2.sum(0, dtype=f32), d_w_q, d_w_v, d_w_c,
                f2.sum(0, dtype=f32), None)


def fusable(decoder: Any) -> bool:
    """Whether `decoder` (a RecurrentDecoder) is the configuration this module runs."""
    from seqtool.layers.attention import BahdanauAttention

    return (decoder.feeding and not decoder.peeky and decoder.rnn.mode == "GRU"
            and decoder.rnn.num_layers == 1 and not decoder.rnn.bidirectional
            and isinstance(decoder.attention, BahdanauAttention))


def fused_forward(decoder: Any, emb: Tensor, state: dict[str, Any]) -> Tensor:
    """Teacher forcing: emb (T, B, E) -> outputs (T, B, H), as RecurrentDecoder.forward."""
    rnn, att, comb = decoder.rnn, decoder.attention, decoder.combine
    p = decoder.drop.p if decoder.training else 0.0
    return FusedFeedingGRU.apply(
        emb, state["hidden"][0], state["keys"], state["memory"], state["mask"],
        rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0,
        att.query_layer.weight, att.energy_layer.weight, comb.weight, comb.bias, p)
