"""Hierarchical encoder-decoder for dialogue (HRED; Serban et al. 2016, "Building
End-To-End Dialogue Systems Using Generative Hierarchical Neural Network Models",
section 3), and the single-turn seq2seq baseline built from the same parts.

    e_n  = BiRNN(u_n)                  every context utterance on its own (layers/encoder.py)
    c    = ContextRNN(e_1 .. e_n)      its state after the last utterance (HRED)
    c    = e_n                         the seq2seq baseline reads only the last utterance
    s    = tanh(W [c; z])              z only in VHRED (models/vhred.py)
    y_t  = Decoder(y_<t, s)            s sets h_0 (bridge) and enters every step (peeky),
                                       optional attention over u_n's tokens

The decoder is the translation decoder (layers/decoder.py): `s` plays the part
of an encoder's final state, so its bridge, peeky input and attention work
unchanged, and decoding (decoding.py, search.py) runs on the step protocol.

Batches are time-major, PAD = 0 (data/dialogue.py):
    ctx (S, N, B)     N context utterances per reply, left-aligned: turn 0 is the
                      oldest present one, turns past `turns` are all padding
    ctx_len (N, B)    tokens per utterance, 0 for an absent turn
    turns (B,)        context utterances present (>= 1)
    tgt (T, B)        the reply followed by EOS
    z (B, Z)          optional (VHRED): use this z instead of drawing one
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from seqtool.config import ChatModelConfig
from seqtool.data.tokenizer import BOS, PAD
from seqtool.errors import ConfigError
from seqtool.layers.decoder import RecurrentDecoder, ReordersDecoderState, output_layer
from seqtool.layers.encoder import Encoded, RecurrentEncoder
from seqtool.layers.rnn import FastDropout, make_rnn
from seqtool.models.base import LossResult, SeqModel


def check_config(cfg: ChatModelConfig) -> None:
    """Cross-field checks that the per-key checks in config.py cannot make."""
    memory = cfg.enc_hidden * (2 if cfg.bidirectional else 1)
    if cfg.attention == "dot" and memory != cfg.dec_hidden:
        raise ConfigError(f"dot attention needs the encoder output size ({memory}) to equal "
                          f"model.dec_hidden ({cfg.dec_hidden})",
                          "use model.attention = 'general' or 'bahdanau'")


class HRED(ReordersDecoderState, SeqModel):
    """HRED (arch "hred") or the single-turn baseline (arch "seq2seq")."""

    kind = "chat"

    def __init__(self, cfg: ChatModelConfig, vocab_size: int, latent: int = 0) -> None:
        super().__init__()
        check_config(cfg)
        self.cfg = cfg
        self.embed = nn.Embedding(vocab_size, cfg.emb_dim, padding_idx=PAD)
        self.drop = FastDropout(cfg.dropout)
        self.encoder = RecurrentEncoder(cfg.cell, cfg.emb_dim, cfg.enc_hidden, 1,
                                        cfg.bidirectional, cfg.dropout)
        size = self.encoder.output_size
        self.context_rnn = (None if cfg.arch == "seq2seq"
                            else make_rnn(cfg.cell, size, cfg.ctx_hidden))
        self.context_size = size if self.context_rnn is None else cfg.ctx_hidden
        self.condition = nn.Linear(self.context_size + latent, size)
        self.decoder = RecurrentDecoder(cfg.cell, cfg.emb_dim, cfg.dec_hidden, cfg.dec_layers,
                                        size, cfg.attention, cfg.input_feeding, "linear",
                                        True, cfg.dropout)
        self.proj, self.out = output_layer(self.decoder.output_size, self.embed,
                                           cfg.tie_embeddings)

    @property
    def single_turn(self) -> bool:
        """The seq2seq baseline: no context RNN, only the last utterance is read."""
        return self.context_rnn is None

    @property
    def context_turns(self) -> int:
        """Previous utterances the model reads (the seq2seq baseline: one)."""
        return 1 if self.context_rnn is None else self.cfg.context_turns

    @property
    def has_attention(self) -> bool:  # type: ignore[override]
        return self.decoder.attention is not None

    def architecture(self) -> str:
        """The model card's name for the architecture."""
        m = self.cfg
        if self.context_rnn is None:
            return "single-turn seq2seq baseline (reads the previous utterance only)"
        return f"HRED, context RNN {m.ctx_hidden} over {m.context_turns} utterances"

    def describe(self, params: int) -> str:
        m = self.cfg
        enc = f"{'bi-' if m.bidirectional else ''}{m.cell.upper()} {m.enc_hidden}"
        return (f"{self.architecture()}; utterance encoder {enc}, decoder {m.cell.upper()} "
                f"{m.dec_layers} x {m.dec_hidden}, attention {m.attention}, embedding "
                f"{m.emb_dim}; {params:,} parameters")

    # --- encoding ---------------------------------------------------------------------
    def encode_utterances(self, tokens: Tensor, lengths: Tensor) -> Encoded:
        """tokens (S, B) right-padded, lengths (B,) >= 1 -> memory (S, B, K), final (B, K)."""
        return self.encoder(self.drop(self.embed(tokens)), lengths)

    def encode_context(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The context vector (B, C), and the last utterance's annotations (S', B, K)
        with its mask (S', B) for attention."""
        ctx, ctx_len, turns = batch["ctx"], batch["ctx_len"], batch["turns"]
        steps, n, rows = ctx.shape  # (S, N, B)
        cols = torch.arange(rows, device=ctx.device)
        last = (turns - 1) * rows + cols  # (B,) column of the last utterance in (S, N*B)
        flat, lens = ctx.reshape(steps, n * rows), ctx_len.reshape(n * rows)
        if self.context_rnn is None:  # seq2seq: the last utterance only
            enc = self.encode_utterances(flat[:, last], lens[last])
            context, memory = enc.final, enc.memory  # (B, K), (S, B, K)
        else:
            present = (lens > 0).nonzero()[:, 0]  # (P,)
            enc = self.encode_utterances(flat[:, present], lens[present])  # final (P, K)
            size = enc.final.shape[1]
            finals = enc.final.new_zeros(n * rows, size).index_copy(0, present, enc.final)
            out, _ = self.context_rnn(self.drop(finals.view(n, rows, size)))  # (N, B, H)
            index = (turns - 1).view(1, rows, 1).expand(1, rows, out.shape[2])
            context = out.gather(0, index)[0]  # (B, H): after each row's last turn
            position = torch.full((n * rows,), -1, dtype=torch.long, device=ctx.device)
            position[present] = torch.arange(present.numel(), device=ctx.device)
            memory = enc.memory[:, position[last]]  # (S, B, K)
        width = int(lens[last].max())
        return context, memory[:width], flat[:width, last] != PAD  # (B, C), (S', B, K), (S', B)

    def latent(self, context: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor | None, Any]:
        """z for decoding (None in HRED) and anything the loss needs besides."""
        return None, None

    def initial_state(self, context: Tensor, z: Tensor | None, memory: Tensor, mask: Tensor
                      ) -> dict[str, Any]:
        cond = context if z is None else torch.cat([context, z], dim=1)  # (B, C [+ Z])
        summary = torch.tanh(self.condition(self.drop(cond)))  # (B, K)
        state = self.decoder.init_state(Encoded(memory, summary), mask)
        if z is not None:
            state["z"] = z
        return state

    # --- decoding pieces ------------------------------------------------------------
    def logits(self, out: Tensor) -> Tensor:
        """Decoder outputs (..., D) -> logits (..., V)."""
        return self.out(self.proj(out))

    def decoder_input(self, tgt: Tensor) -> Tensor:
        """BOS followed by tgt[:-1] (T, B); VHRED replaces some with <unk> in training."""
        return torch.cat([torch.full_like(tgt[:1], BOS), tgt[:-1]])

    def forced_outputs(self, state: dict[str, Any], tgt: Tensor) -> Tensor:
        """Teacher forcing from a start state: tgt (T, B) -> decoder outputs (T, B, D)."""
        return self.decoder(self.drop(self.embed(self.decoder_input(tgt))), state)

    def forced_logits(self, state: dict[str, Any], tgt: Tensor) -> Tensor:
        """tgt (T, B) -> logits (T, B, V) under teacher forcing."""
        return self.logits(self.forced_outputs(state, tgt))

    def reply_nll(self, state: dict[str, Any], tgt: Tensor) -> Tensor:
        """The summed NLL of tgt (T, B) under teacher forcing. The output layer (the
        largest matmul) runs on the real tokens only, not the padding."""
        out = self.forced_outputs(state, tgt)  # (T, B, D)
        real = tgt != PAD
        logits = self.logits(out[real]).float()  # (N, V)
        return nn.functional.cross_entropy(logits, tgt[real], reduction="sum")

    # --- training ---------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], carry: Any = None) -> LossResult:
        """Summed NLL of the reply tokens (EOS included)."""
        context, memory, mask = self.encode_context(batch)
        state = self.initial_state(context, None, memory, mask)
        tgt = batch["tgt"]
        return LossResult(self.reply_nll(state, tgt), int((tgt != PAD).sum()))

    # --- step protocol ----------------------------------------------------------------
    def start(self, batch: dict[str, Tensor]) -> tuple[dict[str, Any], Tensor]:
        context, memory, mask = self.encode_context(batch)
        z, _ = self.latent(context, batch)
        state = self.decoder.for_decoding(self.initial_state(context, z, memory, mask))
        rows = batch["ctx"].shape[2]
        return state, torch.full((rows,), BOS, dtype=torch.long, device=batch["ctx"].device)

    def step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        out, state = self.decoder.step(self.drop(self.embed(tokens)), state)  # (B, D)
        return torch.log_softmax(self.logits(out), -1, dtype=torch.float32), state  # (B, V)

