"""`seqtool chat`: a conversation with a dialogue model that keeps the context.

The session keeps every turn; the model sees the last `context` utterances
(the user's and its own, alternating) when it replies. With --samples N it
decodes N replies from one context: rows of one batch, so a VHRED model draws
N different z. The first reply joins the history. A session is built on a
checkpoint loaded once (loading.load_chatbot), so many sessions can share it;
each keeps its own history and its own random state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from seqtool.config import ChatSettings
from seqtool.configfile import replace_checked
from seqtool.errors import ConfigError

__all__ = ["COMMANDS", "ChatSession", "ChatSettings", "CommandResult", "Turn"]

MAX_CHARS = 5000  # a longer line is cut before tokenizing (the model reads max_utt_len tokens)
COMMANDS = {"/reset": "forget the conversation (start a new one)",
            "/history": "show the conversation so far",
            "/samples N": "show N replies per turn (VHRED: N different z)",
            "/context N": "let the model see the last N utterances",
            "/help": "list these commands", "/quit": "leave (also Ctrl-D, Ctrl-C)"}


# --------------------------------------------------------------------------- replying
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


class _SessionRNG:
    """A private state of torch's default generators (the CPU's and the model's CUDA
    device's), swapped in by `active()` and out again after: seeded with `seed` it
    draws what torch.manual_seed(seed) would, without changing the global state."""

    def __init__(self, device: str, seed: int | None) -> None:
        import torch

        dev = torch.device(device)
        self.cuda = ([dev.index if dev.index is not None else torch.cuda.current_device()]
                     if dev.type == "cuda" else [])
        with torch.random.fork_rng(devices=self.cuda):
            if seed is None:
                torch.seed()
            else:
                torch.manual_seed(seed)
            self.state = self._get()

    def _get(self) -> tuple[Any, list[Any]]:
        import torch

        return torch.get_rng_state(), [torch.cuda.get_rng_state(i) for i in self.cuda]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        import torch

        with torch.random.fork_rng(devices=self.cuda):
            cpu, cuda = self.state
            torch.set_rng_state(cpu)
            for i, st in zip(self.cuda, cuda, strict=True):
                torch.cuda.set_rng_state(st, i)
            try:
                yield
            finally:
                self.state = self._get()


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
        # VHRED draws z from torch's default generator: the session keeps its own state
        # of it, so two sessions (and the caller's random numbers) never disturb another
        self._rng = _SessionRNG(device, seed)

    @property
    def max_utt_len(self) -> int:
        return int(self.loaded.config.model.max_utt_len)

    @property
    def single_turn(self) -> bool:
        """The seq2seq baseline reads only the last utterance."""
        return bool(self.model.single_turn)

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
        with self._rng.active():
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
            key = name[1:]
            try:
                self.settings = replace_checked(self.settings, {key: arg}, {key: name})
            except ConfigError as exc:
                return CommandResult(f"usage: {name} N ({exc.hint or exc.message})")
            note = self.context_notice() if key == "context" else ""
            return CommandResult(f"{key} = {arg}" + (f" ({note})" if note else ""))
        return CommandResult(f"unknown command {name}; commands: " + ", ".join(
            c.split()[0] for c in COMMANDS))
