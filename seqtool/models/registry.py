"""The one explicit model registry: `[model] arch` (within the run's task) selects
a spec, which names the config class and the builder.

Adding a model kind = its model file (a `SeqModel` subclass, models/base.py),
its config class (config.py, with an `arch` field) and one line in SPECS. The
Trainer, decoding, checkpoints and the commands only use the spec and the
model's own answers (`describe`, `input_embeddings`, `has_attention`, ...).

This module imports no torch: the CLI reads the choices from it for `--help`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

from seqtool.config import ChatModelConfig, LMModelConfig, Seq2SeqModelConfig, Word2VecConfig
from seqtool.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class ModelSpec:
    task: str  # lm, translate, chat, word2vec: which `train` command and data it takes
    arch: str  # the value of [model] arch
    config: type  # its [model] table (a frozen dataclass of config.py)
    builder: str  # "module:callable", called as builder(model_cfg, vocab_size)
    summary: str  # one line for --help and `seqtool info`
    two_vocabularies: bool = False  # vocab_size is (source, target); tgt/ tokenizer

    def build(self, model_cfg: Any, vocab_size: Any) -> Any:
        module, name = self.builder.split(":")
        return getattr(import_module(module), name)(model_cfg, vocab_size)


# The first spec of a task is its default arch (each config class's `arch` default).
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("lm", "rnn", LMModelConfig, "seqtool.models.lm:RNNLM",
              "embedding, stacked RNN/LSTM/GRU/peephole LSTM, (adaptive) softmax"),
    ModelSpec("translate", "rnn", Seq2SeqModelConfig, "seqtool.models.seq2seq:Seq2Seq",
              "recurrent attention encoder-decoder", two_vocabularies=True),
    ModelSpec("chat", "hred", ChatModelConfig, "seqtool.models.hred:HRED",
              "HRED: utterance encoder, context RNN, decoder"),
    ModelSpec("chat", "seq2seq", ChatModelConfig, "seqtool.models.hred:HRED",
              "single-turn seq2seq baseline (reads the previous utterance only)"),
    ModelSpec("chat", "vhred", ChatModelConfig, "seqtool.models.vhred:VHRED",
              "VHRED: HRED with a latent variable per reply"),
    ModelSpec("word2vec", "skipgram", Word2VecConfig, "seqtool.models.word2vec:Word2Vec",
              "skip-gram with negative sampling"),
    ModelSpec("word2vec", "cbow", Word2VecConfig, "seqtool.models.word2vec:Word2Vec",
              "CBOW with negative sampling"),
)


def tasks() -> list[str]:
    return list(dict.fromkeys(s.task for s in SPECS))


def archs(task: str) -> tuple[str, ...]:
    """The archs of `task`, its default first."""
    return tuple(s.arch for s in SPECS if s.task == task)


def check_task(task: str) -> None:
    if task not in tasks():
        raise ConfigError(f"unknown task {task!r}", did_you_mean(task, tasks())
                          or f"valid tasks: {', '.join(sorted(tasks()))}")


def default_arch(task: str) -> str:
    check_task(task)
    return archs(task)[0]


def spec_for(task: str, arch: str | None = None) -> ModelSpec:
    """The spec of `arch` in `task` (None: the task's default)."""
    check_task(task)
    arch = arch or default_arch(task)
    for s in SPECS:
        if s.task == task and s.arch == arch:
            return s
    raise ConfigError(f"model.arch = {arch!r} is not a valid choice",
                      f"choose one of: {', '.join(archs(task))}")


def build_model(task: str, model_cfg: Any, vocab_size: int | tuple[int, int]) -> Any:
    """Build the model of `task` that `model_cfg.arch` names, from its typed config and
    the tokenizer's vocab size (a two-vocabulary task: (source, target) sizes, or one
    int for a shared vocabulary)."""
    spec = spec_for(task, getattr(model_cfg, "arch", None))
    if not isinstance(model_cfg, spec.config):
        raise TypeError(f"{task}/{spec.arch} is built from {spec.config.__name__}, "
                        f"not {type(model_cfg).__name__}")
    if not spec.two_vocabularies and not isinstance(vocab_size, int):
        raise TypeError(f"a {task} model has one vocabulary (an int vocab_size)")
    return spec.build(model_cfg, vocab_size)
