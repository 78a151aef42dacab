"""`seqtool chat`: a conversation with a dialogue model that keeps the context.

The session keeps every turn; the model sees the last `context` utterances
(the user's and its own, alternating) when it replies. With --samples N it
decodes N replies from one context: rows of one batch, so a VHRED model draws
N different z. The first reply joins the history.

Also the dialogue data of `train chat` / `evaluate chat` (corpus or plain
`__eou__` files) and the Trainer's data object for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtool.commands.train import DataWithMetrics
from seqtool.errors import CheckpointError, ConfigError

DEFAULT_CHAT = "chat-dailydialog"  # the shipped model: checkpoints/chat-dailydialog/
MAX_CHARS = 5000  # a longer line is cut before tokenizing (the model reads max_utt_len tokens)
MAX_SAMPLES = 10
KIND_NAMES = {"lm": "language model", "translate": "translation model"}
DIALOGUE_LANGS = {"dailydialog": "en", "asdc_ja": "ja"}  # for the BLEU tokenizer
COMMANDS = {"/reset": "forget the conversation (start a new one)",
            "/history": "show the conversation so far",
            "/samples N": "show N replies per turn (VHRED: N different z)",
            "/context N": "let the model see the last N utterances",
            "/help": "list these commands", "/quit": "leave (also Ctrl-D, Ctrl-C)"}


# --------------------------------------------------------------------------- models and data
def load_chatbot(model_path: Path | None, device: str = "cpu") -> Any:
    """A chat checkpoint (--model), or the shipped one. Another kind of checkpoint is
    refused by name."""
    from seqtool.checkpoint import load_checkpoint, read_meta, resolve_folder
    from seqtool.commands.predict import shipped_model

    if model_path is None:
        try:
            model_path = shipped_model(DEFAULT_CHAT)
        except CheckpointError:
            raise CheckpointError("no chat model given, and the shipped one is not installed",
                                  "pass --model RUN (train one: seqtool train chat --model "
                                  "hred --corpus dailydialog --out RUN)") from None
    folder = resolve_folder(model_path)
    kind = read_meta(folder).get("kind")
    if kind != "chat":
        what = KIND_NAMES.get(str(kind), f"{kind!r} model")
        raise CheckpointError(f"{folder} is a {what} (kind {kind!r}), not a chat model",
                              "pass a checkpoint from `seqtool train chat`")
    return load_checkpoint(folder, expect_kind="chat", device=device)


def chat_dialogues(cfg: Any, split: str) -> list[Any]:
    """The dialogues of `split` from data.{train,valid,test}_file or data.corpus."""
    from seqtool.data.dialogue import corpus_dialogues, file_dialogues

    d = cfg.data
    path = {"train": d.train_file, "valid": d.valid_file, "test": d.test_file}[split]
    if path:
        return file_dialogues(path, f"{split} file")
    if d.corpus:
        return corpus_dialogues(d.corpus, split)
    raise ConfigError(f"no {split} dialogues", "give --corpus dailydialog (or asdc_ja), or "
                      "--train-file and --valid-file: one dialogue per line, utterances "
                      "separated by __eou__")


def bleu_tokenize_for(cfg: Any, corpus: str | None) -> str:
    from seqtool.metrics import default_bleu_tokenize

    return cfg.data.bleu_tokenize or default_bleu_tokenize(DIALOGUE_LANGS.get(corpus or ""))


class ChatData(DataWithMetrics):
    """DialogueData for the Trainer, plus the validation KL per reply of a VHRED model
    (the `extra_metrics` hook; encoders only, no decoding)."""

    def extra_metrics(self, model: Any, device: Any) -> dict[str, float]:
        from seqtool.training import to_device

        if not hasattr(model, "kl_per_reply"):
            return {}
        total, replies = 0.0, 0
        for batch in self.data.valid_batches():
            kl = model.kl_per_reply(to_device(batch, device))
            total += float(kl.sum())
            replies += kl.numel()
        return {"kl": total / max(replies, 1), "kl_beta": model.kl_beta()}


# --------------------------------------------------------------------------- replying
@dataclass
class ChatSettings:
    samples: int = 1  # replies per turn
    context: int = 3  # previous utterances the model sees
    temperature: float = 0.8
    top_p: float = 0.9
    greedy: bool = False  # argmax words (VHRED: still one z per sample)
    max_len: int = 40  # reply tokens


@dataclass
class Turn:
    number: int
    text: str  # the user's line
    replies: list[str]
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"turn": self.number, "input": self.text, "replies": self.replies}


@dataclass
class CommandResult:
    message: str = ""
    history: list[tuple[str, str]] | None = None  # (speaker, text) for /history
    quit: bool = False


class ChatSession:
    """The conversation so far and the decoding settings; `reply` and `command`."""

    def __init__(self, loaded: Any, settings: ChatSettings, device: str = "cpu",
                 seed: int | None = None) -> None:
        import torch

        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.settings = settings
        self.device = device
        self.history: list[tuple[str, str]] = []  # ("you" | "bot", text)
        self.turns = 0
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
            torch.manual_seed(seed)  # VHRED draws z from torch's default generator

    @property
    def max_utt_len(self) -> int:
        return int(self.loaded.config.model.max_utt_len)

    @property
    def single_turn(self) -> bool:
        """The seq2seq baseline reads only the last utterance."""
        return self.loaded.config.model.arch == "seq2seq"

    def context_notice(self) -> str:
        """A note when --context asks for more than the model reads, else ''."""
        if self.single_turn and self.settings.context > 1:
            return "this seq2seq model reads only the last utterance; --context has no effect"
        return ""

    def reply(self, text: str) -> Turn | None:
        """The model's replies to `text` (None for an empty line: nothing is sent)."""
        from seqtool.data.dialogue import context_batch, encode_utterance
        from seqtool.data.tokenizer import BOS, EOS, PAD, UNK
        from seqtool.decoding import decode

        text = " ".join(text.split())
        if not text:
            return None
        notices = []
        if len(text) > MAX_CHARS:
            text = text[-MAX_CHARS:]
            notices.append(f"the message is very long; only its last {MAX_CHARS:,} "
                           "characters are read")
        tok = self.tokenizer
        n_tokens = len(tok.encode(text))
        if n_tokens > self.max_utt_len:
            notices.append(f"the message has {n_tokens} tokens; the model reads its last "
                           f"{self.max_utt_len}")
        pieces = tok.pieces(text)
        if pieces and not any(tok.is_known(p) for p in pieces):
            notices.append("none of these words are in the model's vocabulary (all read as "
                           "<unk>); the reply is a guess")
        utterances = [t for _, t in self.history] + [text]
        seen = utterances[-(1 if self.single_turn else self.settings.context):]
        context = [encode_utterance(u, tok, self.max_utt_len) for u in seen]
        s = self.settings
        batch = {k: v.to(self.device) for k, v in context_batch(context, s.samples).items()}
        out = decode(self.model, batch, s.max_len, eos=EOS, sample=not s.greedy,
                     temperature=s.temperature, top_p=s.top_p, banned=(PAD, BOS, UNK),
                     generator=self.generator)
        replies = [" ".join(tok.decode(ids).split()) for ids in out.tokens]
        self.turns += 1
        self.history += [("you", text), ("bot", replies[0])]
        return Turn(self.turns, text, replies, notices)

    def command(self, line: str) -> CommandResult:
        """A slash command; unknown ones and bad values give a message, never an error."""
        name, _, arg = line.strip().partition(" ")
        name, arg = name.lower(), arg.strip()
        if name in ("/quit", "/exit", "/q"):
            return CommandResult(quit=True)
        if name == "/reset":
            self.history.clear()
            return CommandResult("the conversation is forgotten; start a new one")
        if name == "/history":
            return CommandResult(history=list(self.history))
        if name == "/help":
            return CommandResult("\n".join(f"{k:<12} {v}" for k, v in COMMANDS.items()))
        if name in ("/samples", "/context"):
            high = MAX_SAMPLES if name == "/samples" else 50
            if not arg.isdigit() or not 1 <= int(arg) <= high:
                return CommandResult(f"usage: {name} N, with N from 1 to {high}")
            key = name[1:]
            self.settings = dataclasses.replace(self.settings, **{key: int(arg)})
            note = self.context_notice() if key == "context" else ""
            return CommandResult(f"{key} = {arg}" + (f" ({note})" if note else ""))
        return CommandResult(f"unknown command {name}; commands: " + ", ".join(
            c.split()[0] for c in COMMANDS))
