"""Recurrent language model: embedding, stacked RNN/LSTM/GRU, dropout,
optional weight tying and an exact adaptive softmax (Merity et al. 2017 for
the recipe; Zaremba et al. 2014 for dropout between layers; Press & Wolf 2017
for tying).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from seqtool.config import LMModelConfig
from seqtool.layers.adaptive import AdaptiveEmbedding, AdaptiveSoftmax
from seqtool.layers.rnn import FastDropout, make_rnn
from seqtool.models.base import (Embeddings, LossResult, SeqModel, count_parameters,
                                 detach_nested, reorder_nested)

__all__ = ["RNNLM", "count_parameters"]


class RNNLM(SeqModel):
    kind = "lm"

    def __init__(self, cfg: LMModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        cutoffs = cfg.cutoffs if cfg.softmax == "adaptive" else ()
        self.embed = AdaptiveEmbedding(vocab_size, cfg.emb_dim, cutoffs, cfg.div_value)
        self.drop = FastDropout(cfg.dropout)
        self.rnn = make_rnn(cfg.cell, cfg.emb_dim, cfg.hidden, cfg.layers, cfg.dropout)
        self.proj = (nn.Linear(cfg.hidden, cfg.emb_dim, bias=False)
                     if cfg.hidden != cfg.emb_dim else nn.Identity())
        tie = self.embed if cfg.tie_weights else None
        self.out = AdaptiveSoftmax(vocab_size, cfg.emb_dim, cutoffs, cfg.div_value, tie=tie)

    def hidden(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """ids (T, B) -> output features (T, B, E) and the new recurrent state."""
        x = self.drop(self.embed(ids))  # (T, B, E)
        out, state = self.rnn(x, state)  # (T, B, H)
        return self.proj(self.drop(out)), state  # (T, B, E)

    # --- training --------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], carry: Any = None) -> LossResult:
        """batch["input"], batch["target"]: (T, B); carry: state from the last window."""
        feats, state = self.hidden(batch["input"], carry)
        nll = self.out.nll(feats.flatten(0, 1), batch["target"].reshape(-1))
        return LossResult(nll.sum(), nll.numel(), detach_nested(state))

    def describe(self, params: int) -> str:
        m = self.cfg
        return (f"{m.cell} x{m.layers}, hidden {m.hidden}, embedding {m.emb_dim}, "
                f"softmax {m.softmax}, tied {m.tie_weights}; {params:,} parameters")

    def input_embeddings(self) -> list[Embeddings]:
        return [Embeddings("vocabulary", self.embed, "source")]

    def log_probs(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """(T, B) -> (T, B, V) log-probabilities of the next token at each position."""
        feats, state = self.hidden(ids, state)
        lp = self.out.log_prob(feats.flatten(0, 1))
        return lp.view(*ids.shape, -1), state

    # --- step protocol ---------------------------------------------------------
    def start(self, batch: dict[str, Tensor]) -> tuple[Any, Tensor]:
        """batch["prompt"]: (T, B) with T >= 1. Runs all but the last token."""
        prompt = batch["prompt"]
        state = None
        if prompt.shape[0] > 1:
            _, state = self.hidden(prompt[:-1], None)
        return state, prompt[-1]

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        lp, state = self.log_probs(tokens[None, :], state)
        return lp[0], state  # (B, V)

    def reorder(self, state: Any, index: Tensor) -> Any:
        return reorder_nested(state, index, dim=1)

