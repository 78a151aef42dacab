"""The Python API for notebooks and scripts: `seqtool.load` and `seqtool.train`.

    import seqtool

    lm = seqtool.load("lm")                              # the shipped WikiText-2 LM
    lm.predict("some of them looks like", k=5)["prediction"]
    lm.generate("the history of", max_tokens=20, seed=1)["samples"][0]
    de_en = seqtool.load(task="translate", src="de", tgt="en")
    de_en.translate("Ein Mann fährt Fahrrad.", beam=5).text
    bot = seqtool.load("chat").chat(seed=1)
    bot.say("hi , how are you ?")                        # -> list of replies
    summary = seqtool.train("lm-tiny", out="runs/tiny",
                            data={"train_file": "a.txt", "valid_file": "b.txt"},
                            train={"epochs": 2})

A model is loaded once and answers many calls; its methods return what the
command line's --json prints (predict, generate, info) or the library's
Translation objects, and every user error is a SeqtoolError (message + hint).
Arguments after the first are keyword-only and checked as the config keys
they set (config.py), with the same ranges as the command-line flags.

This module and api_train.py (seqtool.train) are the API layer
(tests/architecture.toml): above the commands, which they put together, below
the command line; they never print.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from seqtool.config import ChatSettings, PredictConfig, SamplingConfig
from seqtool.api_train import check_device as _device
from seqtool.api_train import train
from seqtool.errors import CheckpointError, ConfigError, InputError, did_you_mean

if TYPE_CHECKING:
    from seqtool.translation import Translation

__all__ = ["Chat", "Model", "load", "train"]

TASKS = ("lm", "translate", "chat")  # what seqtool.load opens
METHODS = {"lm": (".predict()", ".predict_many()", ".generate()", ".generate_many()"),
           "translate": (".translate()",), "chat": (".chat()",)}


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} = {value!r} is out of range", "allowed range: [1, inf)")
    return value


def _many(texts: Iterable[str], method: str, one: str) -> list[str]:
    if isinstance(texts, str):
        raise InputError(f".{method}() takes a list of prompts, not one string",
                         f"use .{one}(text) for one prompt")
    return list(texts)


# --------------------------------------------------------------------------- chat
class Chat:
    """One conversation with a chat model: `say` sends a line and returns the
    replies (the first joins the history). Sessions of one model share its weights,
    never their history or their random numbers."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.notices: list[str] = []  # the last turn's notes (a cut message, unknown words)

    def say(self, text: str) -> list[str]:
        """The model's replies to `text` (`samples` of them), given the history."""
        turn = self._session.reply(text)
        if turn is None:
            raise InputError("the message is empty", 'say something, e.g. chat.say("hi , how '
                             'are you ?")')
        self.notices = list(turn.notices)
        return list(turn.replies)

    @property
    def history(self) -> list[tuple[str, str]]:
        """The conversation so far: ("you" | "bot", text) pairs, oldest first (a copy)."""
        return list(self._session.history)

    @property
    def settings(self) -> ChatSettings:
        return self._session.settings

    def reset(self) -> None:
        """Forget the conversation (the settings and the random state go on)."""
        self._session.command("/reset")

    def __repr__(self) -> str:
        return f"<seqtool.Chat: {len(self._session.history) // 2} turns>"


# --------------------------------------------------------------------------- the model
class Model:
    """A checkpoint loaded once (seqtool.load). Which methods it answers depends on
    its kind: a language model `predict`, `predict_many`, `generate` and
    `generate_many`; a translation model `translate`; a chat model `chat`. The others
    raise CheckpointError naming the kind. `loaded` is the checkpoint.Loaded (model,
    config, tokenizers) for the library's own functions."""

    def __init__(self, loaded: Any, device: str) -> None:
        self.loaded = loaded
        self.device = device

    @property
    def kind(self) -> str:
        """"lm", "translate" or "chat"."""
        return str(self.loaded.meta["kind"])

    @property
    def path(self) -> Path:
        """The checkpoint folder."""
        return Path(self.loaded.folder)

    @property
    def info(self) -> dict[str, Any]:
        """What `seqtool info --json` prints: kind, vocabulary, parameters per
        component, files, metrics and the model card."""
        from seqtool.commands.info import loaded_info

        return loaded_info(self.loaded)

    def __repr__(self) -> str:
        from seqtool.loading import KIND_NAMES

        return f"<seqtool.Model: {KIND_NAMES.get(self.kind, self.kind)} from {self.path}>"

    def _need(self, kind: str, method: str) -> None:
        from seqtool.loading import KIND_NAMES

        if self.kind != kind:
            raise CheckpointError(f"{self.path} is a {KIND_NAMES.get(self.kind, self.kind)}; "
                                  f".{method}() needs a {KIND_NAMES[kind]}",
                                  f"this model answers {', '.join(METHODS[self.kind])}")

    # --- language model ----------------------------------------------------------
    def predict(self, text: str, *, k: int = 10, show_unk: bool = False) -> dict[str, Any]:
        """The `k` most probable next tokens after `text`: {"prompt", "candidates":
        [{"token", "probability"}, ...], "prediction", "unknown"}, as `seqtool predict
        TEXT --json` prints it. "<unk>" is left out unless `show_unk`."""
        self._need("lm", "predict")
        return self._predict([text], k, show_unk, 1)[0]

    def predict_many(self, texts: Iterable[str], *, k: int = 10, show_unk: bool = False,
                     batch_size: int = 64) -> list[dict[str, Any]]:
        """`predict` for each prompt, run `batch_size` prompts of one length at a time
        (the same numbers as one at a time); results in input order. An empty
        prompt raises InputError naming its position."""
        self._need("lm", "predict_many")
        return self._predict(_many(texts, "predict_many", "predict"), k, show_unk,
                             _positive(batch_size, "batch_size"))

    def _predict(self, texts: list[str], k: int, show_unk: bool, batch_size: int
                 ) -> list[dict[str, Any]]:
        from seqtool.commands.predict import predict_batch
        from seqtool.configfile import replace_checked

        top_k = replace_checked(PredictConfig(), {"top_k": k}, {"top_k": "k"}).top_k
        return predict_batch(self.loaded, texts, top_k=top_k, show_unk=show_unk,
                             batch_size=batch_size)

    def generate(self, text: str, *, max_tokens: int = 30, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, greedy: bool = False, num: int = 1,
                 seed: int | None = None) -> dict[str, Any]:
        """Continue `text`: {"prompt", "samples", "scores", "unknown", "greedy", "seed"},
        as `seqtool generate TEXT --json` prints it; `num` samples (one with
        `greedy`), reproducible with `seed`."""
        self._need("lm", "generate")
        return self._generate([text], 1, seed, max_tokens=max_tokens, temperature=temperature,
                              top_k=top_k, top_p=top_p, greedy=greedy, num_samples=num)[0]

    def generate_many(self, texts: Iterable[str], *, max_tokens: int = 30,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                      greedy: bool = False, num: int = 1, seed: int | None = None,
                      batch_size: int = 64) -> list[dict[str, Any]]:
        """`generate` for each prompt, `batch_size` prompts of one length at a time;
        each prompt samples as it would alone (with `seed`: what generate(text,
        seed=seed) gives). Results in input order."""
        self._need("lm", "generate_many")
        return self._generate(_many(texts, "generate_many", "generate"),
                              _positive(batch_size, "batch_size"), seed,
                              max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                              top_p=top_p, greedy=greedy, num_samples=num)

    def _generate(self, texts: list[str], batch_size: int, seed: int | None,
                  **settings: Any) -> list[dict[str, Any]]:
        from seqtool.commands.predict import generate_batch
        from seqtool.configfile import replace_checked

        sampling = replace_checked(SamplingConfig(), settings, {"num_samples": "num"})
        return generate_batch(self.loaded, texts, sampling=sampling, seed=seed,
                              batch_size=batch_size)

    # --- translation -------------------------------------------------------------
    # a str is an Iterable[str] too: the str overload is the one that applies to it
    @overload
    def translate(  # type: ignore[overload-overlap]
            self, text: str, *, beam: int | None = ..., nbest: int | None = ...,
                  alpha: float | None = ..., max_len_ratio: float | None = ...,
                  no_repeat_ngram: int | None = ..., batch_size: int = ...,
                  tokenized: bool = ...) -> Translation: ...

    @overload
    def translate(self, text: Iterable[str], *, beam: int | None = ...,
                  nbest: int | None = ..., alpha: float | None = ...,
                  max_len_ratio: float | None = ..., no_repeat_ngram: int | None = ...,
                  batch_size: int = ..., tokenized: bool = ...) -> list[Translation]: ...

    def translate(self, text: str | Iterable[str], *, beam: int | None = None,
                  nbest: int | None = None, alpha: float | None = None,
                  max_len_ratio: float | None = None, no_repeat_ngram: int | None = None,
                  batch_size: int = 64, tokenized: bool = False
                  ) -> Translation | list[Translation]:
        """Translate one sentence (a Translation) or many lines (a list, in input
        order, `batch_size` sentences of similar length at a time; an empty line gets
        an empty translation). `.text` (or str()) is the best translation, `.texts` and
        `.scores` the n-best list. The search settings default to the model's
        [search] (beam = beam_size, nbest = n_best). A word-level Japanese/Chinese
        model's words are joined unless `tokenized`."""
        from seqtool.translation import (joins_words, search_settings, translate_lines,
                                         translate_text)

        self._need("translate", "translate")
        search = search_settings(self.loaded.config.search, beam_size=beam, n_best=nbest,
                                 alpha=alpha, max_len_ratio=max_len_ratio,
                                 no_repeat_ngram=no_repeat_ngram)
        join = joins_words(self.loaded) and not tokenized
        if isinstance(text, str):
            return translate_text(self.loaded, text, search, self.device, join=join)
        return list(translate_lines(self.loaded, text, search, self.device,
                                    _positive(batch_size, "batch_size"), join))

    # --- chat ----------------------------------------------------------------------
    def chat(self, *, context: int | None = None, samples: int = 1, temperature: float = 0.8,
             top_p: float = 0.9, greedy: bool = False, max_len: int | None = None,
             seed: int | None = None) -> Chat:
        """A new conversation (Chat): the model sees the last `context` utterances
        (default: as trained), replies with `samples` replies per turn of at most
        `max_len` tokens (default: the model's max_utt_len); `seed` makes it
        reproducible."""
        from seqtool.commands.chat import ChatSession
        from seqtool.configfile import replace_checked

        self._need("chat", "chat")
        m = self.loaded.config.model
        settings = replace_checked(
            ChatSettings(context=m.context_turns, max_len=m.max_utt_len),
            {"context": context, "samples": samples, "temperature": temperature,
             "top_p": top_p, "greedy": greedy, "max_len": max_len})
        return Chat(ChatSession(self.loaded, settings, self.device, seed))


# --------------------------------------------------------------------------- load
def shipped_names() -> list[str]:
    """The models shipped in the package's checkpoints/ folder."""
    from seqtool.loading import checkpoints_root

    root = checkpoints_root()
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file()) \
        if root.is_dir() else []


def _locate(model: str | Path | None, task: str | None) -> tuple[str, Path | None]:
    """(kind, checkpoint folder) of what seqtool.load was given; the folder is None for
    the shipped chat model and the shipped translators (picked by src/tgt)."""
    from seqtool.checkpoint import read_meta, resolve_folder
    from seqtool.loading import DEFAULT_LM, KIND_NAMES, checkpoints_root, shipped_model

    if model is not None and not Path(model).exists():
        name = str(model)
        if name in TASKS and task in (None, name):
            model, task = None, name
        elif name in shipped_names():
            model = checkpoints_root() / name
        else:
            choices = [*TASKS, *shipped_names()]
            raise CheckpointError(f"no checkpoint {name!r}: not a folder, a task or a shipped "
                                  "model", did_you_mean(name, choices)
                                  or "give a run or checkpoint folder, or one of: "
                                  + ", ".join(choices))
    if model is None:
        if task not in TASKS:
            raise ConfigError("give a checkpoint folder or a task" if task is None
                              else f"unknown task {task!r}",
                              'seqtool.load("runs/x"), seqtool.load("lm") or seqtool.load('
                              'task="translate", src="de", tgt="en")')
        return task, shipped_model(DEFAULT_LM) if task == "lm" else None
    folder = resolve_folder(model)
    kind = str(read_meta(folder).get("kind"))
    what = KIND_NAMES.get(kind, f"{kind!r} model")
    if kind not in TASKS:
        raise CheckpointError(f"{folder} is a {what}; seqtool.load opens language, "
                              "translation and chat models",
                              "word vectors: seqtool similar / analogy --model "
                              f"{folder}")
    if task is not None and task != kind:
        raise CheckpointError(f"{folder} is a {what}, not a {KIND_NAMES.get(task, task)}",
                              f"drop task=, or give a {task} checkpoint")
    return kind, folder


def load(model: str | Path | None = None, *, task: str | None = None, src: str | None = None,
         tgt: str | None = None, device: str = "auto", quantize: str | None = None) -> Model:
    """Load a model once, to ask it many times.

    `model` is a checkpoint or run folder (its best/, else last/), a task name for
    the shipped default ("lm", "chat"; "translate" with `src` and `tgt`), or the
    name of a shipped checkpoint ("translate-de-en"). `task` instead of `model`
    picks the shipped one; with `model` it is checked. `device`: "auto" (CUDA where
    present), "cpu" or "cuda". `quantize="int8"`: dynamic int8 on the CPU (README,
    "int8 inference"); "auto" then means the CPU."""
    from seqtool.loading import load_chatbot, load_lm, load_translator

    kind, folder = _locate(model, task)
    if kind != "translate" and (src or tgt):
        raise ConfigError("src and tgt pick a translation model",
                          f"drop them for a {kind} model")
    dev = "cpu" if quantize and device == "auto" else _device(device)
    if kind == "lm":
        loaded = load_lm(folder, dev, quantize)
    elif kind == "translate":
        loaded = load_translator(folder, src, tgt, dev, quantize)
    else:
        loaded = load_chatbot(folder, dev, quantize)
    return Model(loaded, dev)
