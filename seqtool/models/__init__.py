"""Models and the one explicit registry: kind -> (config class, builder)."""

from __future__ import annotations

from typing import Any

from torch import nn


def build_model(kind: str, model_cfg: Any, vocab_size: int | tuple[int, int]) -> nn.Module:
    """Build a model of `kind` from its typed config and the tokenizer's vocab size
    ("translate": (source, target) sizes, or one int for a shared vocabulary)."""
    from seqtool.models.hred import build_dialogue_model
    from seqtool.models.lm import RNNLM
    from seqtool.models.seq2seq import Seq2Seq
    from seqtool.models.word2vec import Word2Vec

    models: dict[str, Any] = {"lm": RNNLM, "translate": Seq2Seq,
                              "chat": build_dialogue_model,  # chat: by model.arch
                              "word2vec": Word2Vec}
    if kind not in models:
        raise ValueError(f"unknown model kind {kind!r}; valid: {', '.join(models)}")
    return models[kind](model_cfg, vocab_size)
