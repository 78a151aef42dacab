"""The recurrent decoder with attention, input feeding, a bridge and a
"peeky" mode.

One step (Luong et al. 2015, sections 3 and 3.3; the JoeyNMT/OpenNMT RNN
decoder):

    x_t   = [emb(y_{t-1}); a_{t-1} if input feeding; s if peeky]
    h_t   = RNN(x_t, h_{t-1})                   the new state is the query
    c_t   = sum_s alpha_ts m_s                  alpha = attention(h_t, memory)
    a_t   = tanh(W_c [h_t; c_t; s if peeky])    the attentional vector
                                                (without attention: a_t = [h_t; s])

Dropout is applied to the input of W_c (as JoeyNMT), or without attention to
the output, and between stacked layers.

`s` is the encoder's final state; "peeky" gives it to every step, as the
PeekyDecoder of "Deep Learning from Scratch 2", section 7.3.
The bridge sets h_0 (JoeyNMT's init_hidden): "last" = the encoder's final
state as it is (sizes must match), "linear" = tanh(W s + b), "none" = zeros.
An LSTM starts its cell state from the same vector as h_0.

With input feeding a_{t-1} enters step t, so teacher forcing must loop over
time in Python; a step then runs the fused torch cell kernels
(torch.gru_cell and friends on the RNN module's own weights) and the
attention's key side is computed once per batch. Without input feeding the
whole target runs through one fused nn.GRU/nn.LSTM call and the attention
for all steps is one batched computation.

The decoding state is a dict of tensors; `STATE_BATCH_DIM` says which
dimension of each holds the batch rows (for reorder). The PER_SOURCE entries
are the same for every row decoded from one source (the beams of a sentence),
so a reorder that keeps each row among its own source's rows leaves them be.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from seqtool.layers.attention import make_attention
from seqtool.layers.encoder import Encoded
from seqtool.layers.fused_decoder import fusable, fused_forward
from seqtool.layers.fused_step import for_decoding, fused_step
from seqtool.layers.rnn import FastDropout, fast_dropout, make_rnn
from seqtool.layers.state import reorder_nested

STATE_BATCH_DIM = {"memory": 1, "keys": 1, "mask": 1, "summary": 0, "hidden": 1,
                   "feed": 0, "attn": 0, "mem_b": 0}
PER_SOURCE = ("memory", "keys", "mask", "summary", "mem_b")  # equal within one source
BRIDGES = ("last", "linear", "none")

_CELLS = {"GRU": torch.gru_cell, "RNN_TANH": torch.rnn_tanh_cell,
          "RNN_RELU": torch.rnn_relu_cell}


def output_layer(size: int, embedding: nn.Embedding, tie: bool) -> tuple[nn.Module, nn.Linear]:
    """(proj, out): decoder outputs of `size` -> vocabulary logits. Tied: the output
    weight is the embedding matrix, reached through a projection to the embedding
    size when the sizes differ; untied: one Linear (no bias, as Joey NMT)."""
    vocab, emb_dim = embedding.num_embeddings, embedding.embedding_dim
    proj = (nn.Linear(size, emb_dim, bias=False) if tie and size != emb_dim
            else nn.Identity())
    out = nn.Linear(emb_dim if tie else size, vocab, bias=False)
    if tie:
        out.weight = embedding.weight
    return proj, out


def rnn_step(rnn: Any, x: Tensor, hidden: Any) -> tuple[Tensor, Any]:
    """One time step of a stacked torch RNN with its own weights: x (B, I) ->
    output (B, H) and the new hidden ((L, B, H), or a pair for an LSTM)."""
    if hasattr(rnn, "step"):  # an int8 RNN (layers/int8.py) runs its own cells
        return rnn.step(x, hidden)
    lstm = rnn.mode == "LSTM"
    hs, cs = hidden if lstm else (hidden, hidden)  # cs only read for an LSTM
    new_h, new_c = [], []
    for layer in range(rnn.num_layers):
        if layer:
            x = fast_dropout(x, rnn.dropout, rnn.training)
        w = [getattr(rnn, f"{n}_l{layer}") for n in
             ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if lstm:
            x, c = torch.lstm_cell(x, (hs[layer], cs[layer]), *w)
            new_c.append(c)
        else:
            x = _CELLS[rnn.mode](x, hs[layer], *w)
        new_h.append(x)
    h = torch.stack(new_h)  # (L, B, H)
    return x, ((h, torch.stack(new_c)) if lstm else h)


class RecurrentDecoder(nn.Module):
    def __init__(self, cell: str, emb_dim: int, hidden: int, layers: int, memory_size: int,
                 attention: str = "bahdanau", input_feeding: bool = True,
                 bridge: str = "last", peeky: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if bridge == "last" and memory_size != hidden:
            raise ValueError(f"bridge 'last' needs the encoder output size ({memory_size}) to "
                             f"equal the decoder size ({hidden})")
        if bridge not in BRIDGES:
            raise ValueError(f"unknown bridge {bridge!r}; valid: {', '.join(BRIDGES)}")
        self.layers, self.hidden = layers, hidden
        self.bridge_kind, self.peeky = bridge, peeky
        self.attention = make_attention(attention, hidden, memory_size)
        self.feeding = input_feeding and self.attention is not None
        peek = memory_size if peeky else 0
        self.rnn = make_rnn(cell, emb_dim + (hidden if self.feeding else 0) + peek, hidden,
                            layers, dropout)
        self.bridge = nn.Linear(memory_size, hidden) if bridge == "linear" else None
        self.combine = (nn.Linear(hidden + memory_size + peek, hidden)
                        if self.attention is not None else None)
        self.drop = FastDropout(dropout)
        self.output_size = hidden if self.attention is not None else hidden + peek
        self.use_fused = True  # False: teacher forcing step by step through autograd

    # --- state -----------------------------------------------------------------
    def init_state(self, enc: Encoded, mask: Tensor) -> dict[str, Any]:
        """The decoding state after the encoder: memory (S, B, K), mask (S, B)."""
        batch = mask.shape[1]
        if self.bridge_kind == "none":
            h0 = enc.final.new_zeros(batch, self.hidden)
        elif self.bridge is not None:
            h0 = torch.tanh(self.bridge(enc.final))  # (B, H)
        else:
            h0 = enc.final  # (B, H)
        h0 = h0[None].expand(self.layers, -1, -1).contiguous()  # (L, B, H)
        state: dict[str, Any] = {"hidden": (h0, h0) if self.rnn.mode == "LSTM" else h0}
        if self.peeky:
            state["summary"] = enc.final  # (B, K)
        if self.attention is not None:
            state.update(memory=enc.memory, keys=self.attention.keys(enc.memory), mask=mask,
                         attn=mask.new_zeros(batch, mask.shape[0], dtype=enc.memory.dtype))
        if self.feeding:
            state["feed"] = enc.final.new_zeros(batch, self.hidden)  # (B, H)
        return state

    def _output(self, h: Tensor, state: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """h (B, H) or (T, B, H) -> attentional vector and attention weights."""
        summary = state.get("summary")
        if summary is not None and h.dim() == 3:
            summary = summary[None].expand(h.shape[0], -1, -1)
        if self.attention is None:
            return self.drop(h if summary is None else torch.cat([h, summary], -1)), None
        assert self.combine is not None  # built with the attention
        context, weights = self.attention(h, state["keys"], state["memory"], state["mask"])
        parts = [h, context] if summary is None else [h, context, summary]
        return torch.tanh(self.combine(self.drop(torch.cat(parts, -1)))), weights

    # --- running -----------------------------------------------------------------
    def for_decoding(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state from init_state in the layout its decoding steps run fastest in
        (layers/fused_step.py; the state itself where that does not apply)."""
        return for_decoding(self, state)

    def step(self, emb: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """emb (B, E) of the previous tokens -> output (B, output_size), new state."""
        if "mem_b" in state:  # the decode layout (for_decoding)
            return fused_step(self, emb, state)
        parts = [emb]
        if self.feeding:
            parts.append(state["feed"])
        if self.peeky:
            parts.append(state["summary"])
        h, hidden = rnn_step(self.rnn, torch.cat(parts, -1) if len(parts) > 1 else emb,
                             state["hidden"])  # (B, H)
        out, weights = self._output(h, state)
        state = {**state, "hidden": hidden}
        if weights is not None:
            state["attn"] = weights  # (B, S)
        if self.feeding:
            state["feed"] = out
        return out, state

    def forward(self, emb: Tensor, state: dict[str, Any]) -> Tensor:
        """Teacher forcing: emb (T, B, E) -> outputs (T, B, output_size)."""
        if self.feeding and self.use_fused and fusable(self):  # see layers/fused_decoder.py
            return fused_forward(self, emb, state)
        if self.feeding:  # a_{t-1} feeds step t: loop over time
            outs = []
            for t in range(emb.shape[0]):
                out, state = self.step(emb[t], state)
                outs.append(out)
            return torch.stack(outs)
        x = emb
        if self.peeky:
            x = torch.cat([emb, state["summary"][None].expand(emb.shape[0], -1, -1)], -1)
        h, _ = self.rnn(x, state["hidden"])  # (T, B, H): one fused call
        return self._output(h, state)[0]


def reorder_state(state: dict[str, Any], index: Tensor, within_sources: bool = False
                  ) -> dict[str, Any]:
    """Select rows `index` of a decoding state. within_sources: each new row comes
    from a row of the same source (beam search between two changes of the set of
    sentences), so the PER_SOURCE tensors, identical within a source, are kept
    as they are instead of being copied (memory and keys are the largest)."""
    return {k: v if within_sources and k in PER_SOURCE
            else reorder_nested(v, index, STATE_BATCH_DIM.get(k, 0))
            for k, v in state.items()}


class ReordersDecoderState:
    """The step protocol's reorder for a model whose state is this decoder's dict
    (Seq2Seq, HRED), with the beam-search shortcut reorder_within_sources."""

    def reorder(self, state: dict[str, Any], index: Tensor) -> dict[str, Any]:
        return reorder_state(state, index)

    def reorder_within_sources(self, state: dict[str, Any], index: Tensor) -> dict[str, Any]:
        return reorder_state(state, index, within_sources=True)
