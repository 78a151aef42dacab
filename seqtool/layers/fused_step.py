"""One decoding step of the input-feeding GRU + Bahdanau decoder (the configuration
layers/fused_decoder.py trains), with the arithmetic of that training forward:
the matrix products in the autocast dtype (bf16 under bf16 decoding), everything
else in fp32, and the weights cast once (kept until they change) instead of at
every step.

Why: the general step (RecurrentDecoder.step) runs torch.gru_cell and the
attention module as a chain of elementwise passes over (S, rows, A) and (S,
rows, K) tensors; at the widths a batch of beams reaches these passes and
products are the step's cost. Measured on the shipped de->en model (beam 5, 2
cores, bench/decode_step.py): translate_batch 1.07-1.14x as fast with 16
sentences a batch and 1.19-1.24x with 32, 0.95-1.00x with 1 and 8.

The decode layout (`for_decoding`, applied by the models' `start`): "keys" in
fp32 (S, rows, A) and the memory as "mem_b" (rows, S, K) in fp32 (fp64 in an
fp64 copy of the model), so that the context sums over contiguous rows. The
context is an elementwise product and sum, not a batched matrix product: in
fp32 torch's bmm loops over the rows (2x slower here), and a bf16 product whose
shape has the source length in it would make oneDNN build and keep a kernel for
every new length (layers/attention.py, _no_shape_state); the bf16 products here
have the row count in their shapes only, as the Linear layers of the general
step do.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqtool.layers.fused_decoder import _dtypes, _tanh, fusable


class _Weights(NamedTuple):
    key: tuple[Any, ...]
    w_ih: Tensor  # (3H, E + H), matmul dtype
    w_hh: Tensor  # (3H, H)
    w_q: Tensor  # 2 W_q (A, H)
    w_c: Tensor  # (H, H + K)
    b_ih: Tensor  # fp32 from here on
    b_hh: Tensor
    v: Tensor  # 2v (A,)
    b_c: Tensor


_CAST: weakref.WeakKeyDictionary[nn.Module, _Weights] = weakref.WeakKeyDictionary()


def step_fusable(decoder: Any) -> bool:
    """Whether decoding steps of `decoder` run here (float weights: an int8 decoder,
    layers/int8.py, runs its own kernels)."""
    return (fusable(decoder) and isinstance(decoder.rnn, nn.GRU)
            and type(decoder.combine) is nn.Linear
            and type(decoder.attention.query_layer) is nn.Linear)


def for_decoding(decoder: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The decode layout of a state from init_state, where this module runs the steps
    (no gradients); otherwise the state as it is."""
    if torch.is_grad_enabled() or decoder.training or not step_fusable(decoder):
        return state
    f32 = _dtypes(state["memory"])[1]
    out = {k: v for k, v in state.items() if k != "memory"}
    out["keys"] = state["keys"].to(f32)
    out["mem_b"] = state["memory"].to(f32).transpose(0, 1).contiguous()  # (rows, S, K)
    return out


def _weights(decoder: Any, cd: torch.dtype, f32: torch.dtype) -> _Weights:
    rnn, att, comb = decoder.rnn, decoder.attention, decoder.combine
    params = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0,
              att.query_layer.weight, att.energy_layer.weight, comb.weight, comb.bias)
    key = (cd, f32, *((p.data_ptr(), p._version) for p in params))
    cached = _CAST.get(decoder)
    if cached is not None and cached.key == key:
        return cached
    with torch.no_grad():
        w_ih, w_hh, b_ih, b_hh, w_q, w_v, w_c, b_c = params
        cast = _Weights(key, w_ih.to(cd), w_hh.to(cd), w_q.to(cd).mul(2), w_c.to(cd),
                        b_ih.to(f32), b_hh.to(f32), w_v[0].to(f32).mul(2), b_c.to(f32))
    _CAST[decoder] = cast
    return cast


def fused_step(decoder: Any, emb: Tensor, state: dict[str, Any]
               ) -> tuple[Tensor, dict[str, Any]]:
    """RecurrentDecoder.step on a decode-layout state: emb (rows, E) -> output
    (rows, H) and the new state."""
    cd, f32 = _dtypes(state["keys"])
    w = _weights(decoder, cd, f32)
    H = w.w_hh.shape[1]
    h0 = state["hidden"][0].to(f32)  # (rows, H)
    x = torch.cat([emb.to(cd), state["feed"].to(cd)], -1)
    gi = torch.add(w.b_ih, F.linear(x, w.w_ih))  # fp32 (the sum promotes)
    gh = torch.add(w.b_hh, F.linear(h0.to(cd), w.w_hh))
    r_z = torch.sigmoid(gi[:, :2 * H].add_(gh[:, :2 * H]))
    r, z = r_z[:, :H], r_z[:, H:]
    n = _tanh(torch.addcmul(gi[:, 2 * H:], r, gh[:, 2 * H:]))
    h = torch.addcmul(n, z, h0 - n)  # (rows, H)
    keys = state["keys"]  # (S, rows, A): 2 W_k m
    S, rows, A = keys.shape
    e = torch.add(keys, F.linear(h.to(cd), w.w_q)).sigmoid_()
    score = torch.mv(e.view(S * rows, A), w.v).view(S, rows)
    alpha = torch.softmax(score.masked_fill_(~state["mask"], float("-inf")), 0)  # (S, rows)
    context = (state["mem_b"] * alpha.t()[..., None]).sum(1)  # (rows, K); no product: see above
    u = torch.cat([h.to(cd), context.to(cd)], -1)
    f = _tanh(torch.add(w.b_c, F.linear(u, w.w_c)))  # (rows, H)
    return f, {**state, "hidden": h[None], "feed": f, "attn": alpha.t()}
