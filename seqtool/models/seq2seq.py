"""Attention encoder-decoder for translation (Bahdanau et al. 2015; Luong et
al. 2015; the RNN models of JoeyNMT and OpenNMT-py), on the step protocol.

Batches are time-major and right-padded with PAD = 0:
    src (S, B), src_len (B,), src_mask (S, B) True on real tokens,
    tgt (T, B) the target ids followed by EOS (the decoder's input is BOS
    followed by tgt[:-1], built here).
`src_len` / `src_mask` are derived from `src` when absent.

With `reverse_source` each sentence is read backwards (within its length);
the annotations are flipped back afterwards, so attention weights are always
over the source in its original order. With `shared_vocab` source and target
use one tokenizer and the encoder and decoder share one embedding matrix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from seqtool.config import Seq2SeqModelConfig
from seqtool.data.tokenizer import BOS, PAD
from seqtool.errors import ConfigError
from seqtool.layers.decoder import RecurrentDecoder, ReordersDecoderState, output_layer
from seqtool.layers.encoder import RecurrentEncoder, flip_padded
from seqtool.layers.rnn import FastDropout
from seqtool.models.base import Embeddings, LossResult, SeqModel


def check_config(cfg: Seq2SeqModelConfig, src_vocab: int, tgt_vocab: int) -> None:
    """Cross-field checks that the per-key checks in config.py cannot make."""
    memory = cfg.enc_hidden * (2 if cfg.bidirectional else 1)
    if cfg.bridge == "last" and memory != cfg.dec_hidden:
        raise ConfigError(
            f"model.bridge = 'last' needs the encoder output size ({memory} = enc_hidden "
            f"{cfg.enc_hidden} x {2 if cfg.bidirectional else 1} directions) to equal "
            f"model.dec_hidden ({cfg.dec_hidden})",
            "set model.dec_hidden to match, or model.bridge = 'linear' or 'none'")
    if cfg.attention == "dot" and memory != cfg.dec_hidden:
        raise ConfigError(f"dot attention needs the encoder output size ({memory}) to equal "
                          f"model.dec_hidden ({cfg.dec_hidden})",
                          "use model.attention = 'general' or 'bahdanau'")
    if cfg.shared_vocab and src_vocab != tgt_vocab:
        raise ConfigError(f"model.shared_vocab needs one vocabulary, got {src_vocab} source "
                          f"and {tgt_vocab} target entries", "train one joint tokenizer")


class Seq2Seq(ReordersDecoderState, SeqModel):
    kind = "translate"

    def __init__(self, cfg: Seq2SeqModelConfig, vocab_size: int | tuple[int, int]) -> None:
        super().__init__()
        src_vocab, tgt_vocab = ((vocab_size, vocab_size) if isinstance(vocab_size, int)
                                else vocab_size)
        check_config(cfg, src_vocab, tgt_vocab)
        self.cfg = cfg
        self.src_embed = nn.Embedding(src_vocab, cfg.emb_dim, padding_idx=PAD)
        self.tgt_embed = (self.src_embed if cfg.shared_vocab
                          else nn.Embedding(tgt_vocab, cfg.emb_dim, padding_idx=PAD))
        self.drop = FastDropout(cfg.dropout)
        self.encoder = RecurrentEncoder(cfg.cell, cfg.emb_dim, cfg.enc_hidden, cfg.enc_layers,
                                        cfg.bidirectional, cfg.dropout)
        self.decoder = RecurrentDecoder(cfg.cell, cfg.emb_dim, cfg.dec_hidden, cfg.dec_layers,
                                        self.encoder.output_size, cfg.attention,
                                        cfg.input_feeding, cfg.bridge, cfg.peeky, cfg.dropout)
        self.proj, self.out = output_layer(self.decoder.output_size, self.tgt_embed,
                                           cfg.tie_target_embeddings)

    @property
    def has_attention(self) -> bool:  # type: ignore[override]
        return self.decoder.attention is not None

    def describe(self, params: int) -> str:
        m = self.cfg
        enc = (f"{'bi-' if m.bidirectional else ''}{m.cell.upper()} {m.enc_layers} x "
               f"{m.enc_hidden}{' per direction' if m.bidirectional else ''}")
        feed = ", input feeding" if m.input_feeding else ""
        return (f"attention encoder-decoder; encoder {enc}, decoder {m.cell.upper()} "
                f"{m.dec_layers} x {m.dec_hidden}, attention {m.attention}{feed}, "
                f"embedding {m.emb_dim}; {params:,} parameters")

    def input_embeddings(self) -> list[Embeddings]:
        tables = [Embeddings("source", self.src_embed, "source")]
        if self.tgt_embed is not self.src_embed:
            tables.append(Embeddings("target", self.tgt_embed, "target"))
        return tables

    # --- shared pieces -----------------------------------------------------------
    def encode(self, batch: dict[str, Tensor]) -> dict[str, Any]:
        """The source batch -> the decoder's initial state (see layers/decoder.py)."""
        src = batch["src"]  # (S, B)
        mask = batch.get("src_mask")
        mask = (src != PAD) if mask is None else mask  # (S, B)
        lengths = batch.get("src_len")
        lengths = mask.sum(0) if lengths is None else lengths  # (B,)
        if self.cfg.reverse_source:
            src = flip_padded(src, lengths)
        enc = self.encoder(self.drop(self.src_embed(src)), lengths)  # memory (S, B, K)
        if self.cfg.reverse_source:
            enc.memory = flip_padded(enc.memory, lengths)  # back to source order
        return self.decoder.init_state(enc, mask)

    def logits(self, out: Tensor) -> Tensor:
        """Decoder outputs (..., D) -> logits (..., V)."""
        return self.out(self.proj(out))

    # --- training ------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], carry: Any = None) -> LossResult:
        """Summed NLL over the non-pad target tokens (EOS included). Label smoothing
        applies in training mode only, so validation reports a true perplexity."""
        state = self.encode(batch)
        tgt = batch["tgt"]  # (T, B)
        tgt_in = torch.cat([torch.full_like(tgt[:1], BOS), tgt[:-1]])  # (T, B)
        out = self.decoder(self.drop(self.tgt_embed(tgt_in)), state)  # (T, B, D)
        real = tgt != PAD  # the output layer (the largest matmul) skips the padding
        logits = self.logits(out[real]).float()  # (N, V)
        smoothing = self.cfg.label_smoothing if self.training else 0.0
        loss = nn.functional.cross_entropy(logits, tgt[real], reduction="sum",
                                           label_smoothing=smoothing)
        return LossResult(loss, int(real.sum()))

    # --- step protocol ---------------------------------------------------------------
    def start(self, batch: dict[str, Tensor]) -> tuple[dict[str, Any], Tensor]:
        state = self.decoder.for_decoding(self.encode(batch))
        return state, torch.full((batch["src"].shape[1],), BOS, dtype=torch.long,
                                 device=batch["src"].device)

    def step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        out, state = self.decoder.step(self.drop(self.tgt_embed(tokens)), state)  # (B, D)
        return torch.log_softmax(self.logits(out), -1, dtype=torch.float32), state  # (B, V)

    def attention_weights(self, state: dict[str, Any]) -> Tensor | None:
        """The last step's attention over the source (B, S), or None without attention."""
        return state.get("attn")
