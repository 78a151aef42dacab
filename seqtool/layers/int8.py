"""Dynamic int8 inference on a CPU: the model's matrices stored as int8 with one
fp32 scale per output row, activations quantised per call (fbgemm's dynamic
kernels, the ones torch.ao.quantization.quantize_dynamic uses).

Why our own modules rather than `quantize_dynamic(model, {nn.Linear, nn.LSTM})`:
that function matches module types exactly, so seqtool's LSTM/GRU subclasses
(layers/rnn.py) would silently stay fp32; the translation decoder's step runs
the GRU cell on the module's raw weights (layers/decoder.py, rnn_step) and the
tied outputs (the adaptive softmax, a Linear sharing the embedding matrix) are
not Linear modules at all. Here every matrix that takes part in a product is
replaced on purpose, and `fp32_parts` names what is left (tests check it):

    nn.Linear                     -> Int8Linear
    nn.LSTM / nn.GRU (subclasses) -> Int8RNN (torch.quantized_lstm / _gru, and the
                                     dynamic cells for one decoding step)
    nn.Embedding                  -> Int8Embedding (rows dequantised on lookup; the
                                     same int8 matrix serves a tied output layer)
    AdaptiveSoftmax               -> Int8AdaptiveSoftmax (head, tails and tail
                                     projections int8)

What stays fp32, and why: biases; the Bahdanau energy vector v (an elementwise
weighting, `energy_layer`); the adaptive softmax's cluster rows (two rows);
Elman RNNs and the peephole LSTM (no dynamic int8 kernel runs them; reported).

State dicts hold plain tensors (int8 weights, fp32 scales and biases), so an
int8 model folder is safetensors + JSON like any checkpoint (checkpoint.py);
the fbgemm packed matrices are built on first use and rebuilt after a load.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqtool.layers.adaptive import AdaptiveEmbedding, AdaptiveSoftmax

METHODS = ("int8",)


@functools.cache
def reduce_range() -> bool:
    """Whether activations use 7 bits (0..127) rather than 8, as torch's own dynamic
    quantisation always does on x86: without AVX-512 VNNI fbgemm sums pairs of
    u8 x s8 products in int16, which 8-bit activations can saturate. With VNNI
    (vpdpbusd sums into int32) the eighth bit is safe, and it matters: on the
    shipped chat model 7 bits cost 1.8% perplexity, 8 bits 0.2% (bench/RESULTS.md)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return True
    return "avx512_vnni" not in flags.split()


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """w (O, I) float -> (int8 (O, I), fp32 scale (O,)): symmetric, one scale per
    row, w ~ q * scale[:, None]."""
    w = w.detach().float()
    scale = (w.abs().amax(1) / 127).clamp_min(1e-12)  # (O,)
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


def _pack(q: Tensor, scale: Tensor, bias: Tensor | None) -> Any:
    """fbgemm's packed matrix for quantized::linear_dynamic."""
    import warnings

    zeros = torch.zeros(q.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # "quantized tensor creation ... deprecated"
        warnings.simplefilter("ignore", UserWarning)
        qw = torch._make_per_channel_quantized_tensor(q, scale.double(), zeros, 0)
    return torch.ops.quantized.linear_prepack(qw, None if bias is None else bias.float())


def int8_linear(x: Tensor, packed: Any) -> Tensor:
    """x (..., I) -> (..., O) fp32 through the packed int8 matrix."""
    return torch.ops.quantized.linear_dynamic(x.float().contiguous(), packed, reduce_range())


class _Packs(nn.Module):
    """Caches packed matrices; the cache is dropped whenever a state dict is loaded."""

    def __init__(self) -> None:
        super().__init__()
        self._packs: dict[str, Any] = {}

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._packs = {}
        super()._load_from_state_dict(*args, **kwargs)

    def packed(self, key: str, q: Tensor, scale: Tensor, bias: Tensor | None) -> Any:
        if key not in self._packs:
            self._packs[key] = _pack(q, scale, bias)
        return self._packs[key]


class Int8Linear(_Packs):
    """nn.Linear with an int8 weight: y = dequant(W_q) x + b, x quantised per call."""

    qweight: Tensor  # (O, I) int8
    scale: Tensor  # (O,) fp32

    def __init__(self, out_features: int, in_features: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.zeros(out_features, in_features,
                                                    dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias \
            else None

    @classmethod
    def from_weight(cls, weight: Tensor, bias: Tensor | None = None) -> Int8Linear:
        m = cls(weight.shape[0], weight.shape[1], bias is not None)
        m.qweight, m.scale = quantize_rows(weight)
        if bias is not None and m.bias is not None:
            m.bias.data = bias.detach().float().clone()
        return m

    def forward(self, x: Tensor) -> Tensor:
        return int8_linear(x, self.packed("w", self.qweight, self.scale, self.bias))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Int8Embedding(_Packs):
    """nn.Embedding with int8 rows (one scale per row); `linear(x)` is the tied output
    layer x W^T through the same int8 matrix (the scale per row is the scale per
    output)."""

    qweight: Tensor  # (num, dim) int8
    scale: Tensor  # (num,) fp32

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num, dim
        self.register_buffer("qweight", torch.zeros(num, dim, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(num))

    @classmethod
    def from_embedding(cls, emb: nn.Embedding) -> Int8Embedding:
        m = cls(emb.num_embeddings, emb.embedding_dim)
        m.qweight, m.scale = quantize_rows(emb.weight)
        return m

    def forward(self, ids: Tensor) -> Tensor:
        rows = F.embedding(ids, self.qweight).float()  # (..., D)
        return rows * F.embedding(ids, self.scale[:, None])  # (..., D) * (..., 1)

    def linear(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """x (..., D) -> (..., num) logits; a table is used with one bias at most."""
        return int8_linear(x, self.packed("w" if bias is None else "wb", self.qweight,
                                          self.scale, bias))


class TiedInt8Linear(nn.Module):
    """A Linear whose weight was an embedding's: the Int8Embedding's matrix (no
    tensors of its own)."""

    def __init__(self, embedding: Int8Embedding) -> None:
        super().__init__()
        self._emb = [embedding]  # a list: the embedding is registered elsewhere

    def forward(self, x: Tensor) -> Tensor:
        return self._emb[0].linear(x)


def _rnn_names(layers: int, dirs: int) -> list[str]:
    return [f"l{k}{'_reverse' if d else ''}" for k in range(layers) for d in range(dirs)]


class Int8RNN(_Packs):
    """nn.LSTM / nn.GRU (time-major, inference) with int8 weight matrices; `step` is
    one time step of the stack (layers/decoder.py's rnn_step)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool) -> None:
        super().__init__()
        self.mode, self.hidden_size, self.num_layers = mode, hidden_size, num_layers
        self.input_size, self.bidirectional = input_size, bidirectional
        self.dropout, self.batch_first = 0.0, False
        gates = (4 if mode == "LSTM" else 3) * hidden_size
        dirs = 2 if bidirectional else 1
        for k, name in enumerate(_rnn_names(num_layers, dirs)):
            size = input_size if k < dirs else hidden_size * dirs
            for part, cols in (("ih", size), ("hh", hidden_size)):
                self.register_buffer(f"qweight_{part}_{name}",
                                     torch.zeros(gates, cols, dtype=torch.int8))
                self.register_buffer(f"scale_{part}_{name}", torch.ones(gates))
                self.register_parameter(f"bias_{part}_{name}", nn.Parameter(
                    torch.zeros(gates), requires_grad=False))  # a parameter, as Int8Linear's

    @classmethod
    def from_rnn(cls, rnn: nn.RNNBase) -> Int8RNN:
        m = cls(rnn.mode, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bidirectional)
        dirs = 2 if rnn.bidirectional else 1
        for name in _rnn_names(rnn.num_layers, dirs):
            for part in ("ih", "hh"):
                w = getattr(rnn, f"weight_{part}_{name}")
                q, s = quantize_rows(w)
                setattr(m, f"qweight_{part}_{name}", q)
                setattr(m, f"scale_{part}_{name}", s)
                if rnn.bias:
                    b = getattr(rnn, f"bias_{part}_{name}")
                    getattr(m, f"bias_{part}_{name}").data = b.detach().float().clone()
        return m

    def _cell_weights(self, name: str) -> tuple[Any, Any, Tensor, Tensor]:
        """(packed ih, packed hh, bias ih, bias hh) of one layer and direction."""
        packs = []
        for part in ("ih", "hh"):
            packs.append(self.packed(f"{part}_{name}", getattr(self, f"qweight_{part}_{name}"),
                                     getattr(self, f"scale_{part}_{name}"),
                                     getattr(self, f"bias_{part}_{name}")))
        return packs[0], packs[1], self.bias_ih(name), self.bias_hh(name)

    def bias_ih(self, name: str) -> Tensor:
        return getattr(self, f"bias_ih_{name}")

    def bias_hh(self, name: str) -> Tensor:
        return getattr(self, f"bias_hh_{name}")

    def _params(self) -> list[Any]:
        if "cells" not in self._packs:
            dirs = 2 if self.bidirectional else 1
            self._packs["cells"] = [
                torch.ops.quantized.make_quantized_cell_params_dynamic(
                    *self._cell_weights(name), reduce_range())
                for name in _rnn_names(self.num_layers, dirs)]
        return list(self._packs["cells"])

    def forward(self, x: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        """x (T, B, I) -> (T, B, H * directions), the final state as nn.LSTM/nn.GRU's."""
        x = x.float()
        n = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            z = x.new_zeros(n, x.shape[1], self.hidden_size)
            hx = (z, z) if self.mode == "LSTM" else z
        if self.mode == "LSTM":
            out, h, c = torch.quantized_lstm(
                x, [hx[0].float(), hx[1].float()], self._params(), True, self.num_layers, 0.0,
                False, self.bidirectional, False, dtype=torch.qint8, use_dynamic=True)
            return out, (h, c)
        out, h = torch.quantized_gru(x, hx.float(), self._params(), True, self.num_layers, 0.0,
                                     False, self.bidirectional, False)
        return out, h

    def step(self, x: Tensor, hidden: Any) -> tuple[Tensor, Any]:
        """One step of the (unidirectional) stack: x (B, I) -> (B, H), new hidden."""
        lstm = self.mode == "LSTM"
        hs, cs = hidden if lstm else (hidden, hidden)
        x = x.float()
        new_h, new_c = [], []
        for layer in range(self.num_layers):
            w = self._cell_weights(f"l{layer}")
            if lstm:
                x, c = torch.ops.quantized.quantized_lstm_cell_dynamic(
                    x, [hs[layer].float(), cs[layer].float()], *w)
                new_c.append(c)
            else:
                x = torch.ops.quantized.quantized_gru_cell_dynamic(x, hs[layer].float(), *w)
            new_h.append(x)
        h = torch.stack(new_h)  # (L, B, H)
        return x, ((h, torch.stack(new_c)) if lstm else h)

    def extra_repr(self) -> str:
        return (f"{self.mode}, {self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, int8")


class Int8AdaptiveSoftmax(AdaptiveSoftmax):
    """AdaptiveSoftmax over an int8 AdaptiveEmbedding: the head and tail logits and
    the tail projections through int8 matrices (log_prob and nll are inherited)."""

    def __init__(self, src: AdaptiveSoftmax, emb: AdaptiveEmbedding) -> None:
        nn.Module.__init__(self)
        self.bounds, self.vocab, self.tied = src.bounds, src.vocab, src.tied
        if not src.tied:
            self.own = emb
        self._emb = [emb]
        self.cluster = src.cluster  # fp32: one row per tail cluster
        self.bias, self.tail_bias = src.bias, src.tail_bias
        # h @ P for a tail's projection P (dim, d_i): an int8 Linear dim -> d_i
        projs = [src.emb.projs[i] for i in range(1, len(src.bounds) - 1)]
        self.tail_proj = nn.ModuleList(
            Int8Linear.from_weight(p.weight.t()) if isinstance(p, nn.Linear) else nn.Identity()
            for p in projs)

    def _head_logits(self, h: Tensor) -> Tensor:
        head = _int8_table(self.emb, 0).linear(h)  # (N, head)
        if self.cluster.shape[0]:
            head = torch.cat([head, F.linear(h.float(), self.cluster.float())], 1)
        return head + self.bias

    def _tail_log_probs(self, h: Tensor, i: int) -> Tensor:
        hp = self.tail_proj[i - 1](h)  # (N, d_i)
        logits = _int8_table(self.emb, i).linear(hp, self.tail_bias[i - 1])
        return F.log_softmax(logits.float(), dim=-1)


def _int8_table(emb: AdaptiveEmbedding, i: int) -> Int8Embedding:
    table = emb.tables[i]
    assert isinstance(table, Int8Embedding)
    return table


# --------------------------------------------------------------------------- the model
KEEP_FP32 = {"energy_layer": "the Bahdanau energy vector v, read as a vector"}


def _swap(model: nn.Module, make: Any) -> None:
    """Replace every child c with make(name, c) where that is not None. Children are
    read from _modules, so a module registered under two names (a shared
    embedding) is seen under both and replaced by one new module."""
    done: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            if id(child) not in done:
                new = make(name, child)
                done[id(child)] = child if new is None else new
            if done[id(child)] is not child:
                setattr(parent, name, done[id(child)])


def quantize_model(model: nn.Module, method: str = "int8") -> nn.Module:
    """Dynamic int8 in place (a CPU model in eval mode); returns the model, marked
    `model.quantized = "int8"`. fp32_parts(model) lists what is left in fp32."""
    if method not in METHODS:
        raise ValueError(f"unknown quantisation {method!r}; valid: {', '.join(METHODS)}")
    model.eval()
    # the softmax first: it reads the fp32 tail projections of its embedding
    _swap(model, lambda _, c: Int8AdaptiveSoftmax(c, c.emb) if type(c) is AdaptiveSoftmax
          else None)
    tables: dict[int, Int8Embedding] = {}  # id(fp32 weight) -> its int8 embedding

    def embedding(_: str, c: nn.Module) -> nn.Module | None:
        if not isinstance(c, nn.Embedding):
            return None
        tables[id(c.weight)] = Int8Embedding.from_embedding(c)
        return tables[id(c.weight)]

    def linear(name: str, c: nn.Module) -> nn.Module | None:
        if not isinstance(c, nn.Linear) or name in KEEP_FP32:
            return None
        if id(c.weight) in tables and c.bias is None:
            return TiedInt8Linear(tables[id(c.weight)])
        return Int8Linear.from_weight(c.weight, c.bias)

    _swap(model, embedding)
    _swap(model, linear)
    _swap(model, lambda _, c: Int8RNN.from_rnn(c) if isinstance(c, (nn.LSTM, nn.GRU))
          else None)
    for m in model.modules():
        if hasattr(m, "use_fused"):
            m.use_fused = False  # type: ignore[assignment]  # fused_decoder reads fp32 weights
    model.quantized = method  # type: ignore[assignment]
    return model


def unquantisable(model: nn.Module) -> list[str]:
    """Names of the recurrent layers no int8 kernel runs (Elman RNNs, the peephole
    LSTM): quantize_model leaves them fp32."""
    from seqtool.layers.rnn import PeepholeLSTM

    return [name for name, m in model.named_modules()
            if isinstance(m, (nn.RNN, PeepholeLSTM))]


def is_quantized(model: Any) -> bool:
    return getattr(model, "quantized", None) is not None


def fp32_parts(model: nn.Module) -> list[str]:
    """State-dict names of the floating-point matrices (2 or more dimensions) a model
    still holds: after quantize_model only the ones the module docstring names."""
    return [k for k, v in model.state_dict().items()
            if isinstance(v, Tensor) and v.is_floating_point() and v.dim() >= 2]
