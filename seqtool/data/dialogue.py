"""Dialogues: reading DailyDialog, asdc_ja and plain `__eou__` files, cutting
them into (context, reply) windows, and batching those for the dialogue models.

Sources (corpus catalog formats, see data/corpora.py):
- dailydialog-zip: `<split>.zip` holds `<split>/dialogues_<split>.txt`, one
  dialogue per line, each utterance followed by ` __eou__`, and line-aligned
  `dialogues_act_<split>.txt` / `dialogues_emotion_<split>.txt` with one label
  per utterance (acts 1-4, emotions 0-6). Splits train / valid / test.
- asdc: `dialog_json/NNN.json` (the text, with typos fixed in `text_fixed`, and
  `meta.purpose` = train / dev / test, the authors' split); consecutive messages
  of one speaker are joined into one turn, line breaks become spaces.
- a plain file (`--train-file`): one dialogue per line in DailyDialog's format.

Windows: every utterance but the first is a reply once, conditioned on up to
`context_turns` utterances before it.

Batches (PAD = 0; models/hred.py):
    ctx (S, N, B), ctx_len (N, B) (0 = absent turn), turns (B,), tgt (T, B) reply + EOS.
Context turns are left-aligned (turn 0 is the oldest one present). A context
utterance keeps its last `max_len` tokens, a reply its first `max_len`.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from seqtool.data.buckets import BucketedData
from seqtool.data.tokenizer import EOS, PAD, UNK, Tokenizer
from seqtool.config import DataConfig
from seqtool.errors import ConfigError, CorpusError, DataError

EOU = "__eou__"
ASDC_SPLITS = {"train": "train", "valid": "dev", "dev": "dev", "test": "test"}
DIALOGUE_FORMATS = ("dailydialog-zip", "asdc")
DIALOGUE_LANGS = {"dailydialog": "en", "asdc_ja": "ja"}  # for the BLEU tokenizer


@dataclass
class Dialogue:
    turns: list[str]
    acts: list[int] | None = None  # DailyDialog: 1 inform, 2 question, 3 directive, 4 commissive
    emotions: list[int] | None = None  # DailyDialog: 0 none, 1 anger, ... 6 surprise
    speakers: list[str] | None = None  # asdc


@dataclass
class Example:
    context: list[list[int]]  # oldest first, each non-empty
    reply: list[int]  # without EOS, non-empty


# --------------------------------------------------------------------------- reading
def split_turns(line: str) -> list[str]:
    """One `__eou__`-separated dialogue line -> its utterances (empty ones dropped)."""
    return [" ".join(u.split()) for u in line.split(EOU) if u.strip()]


def parse_eou_lines(lines: Iterable[str]) -> list[Dialogue]:
    """Dialogues from lines in DailyDialog's format (blank lines skipped)."""
    return [Dialogue(turns) for turns in map(split_turns, lines) if turns]


def _labels(text: str, count: int) -> list[int] | None:
    values = [int(v) for v in text.split()]
    return values if len(values) == count else None  # a few lines disagree: drop them


def read_dailydialog(path: Path) -> list[Dialogue]:
    """All dialogues of one DailyDialog split archive (`train.zip`, `validation.zip` ...),
    with their act and emotion labels where the counts match the utterances."""
    split = path.stem
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read(f"{split}/dialogues_{split}.txt").decode("utf-8").splitlines()
            names = set(zf.namelist())
            acts = emotions = None
            if f"{split}/dialogues_act_{split}.txt" in names:
                acts = zf.read(f"{split}/dialogues_act_{split}.txt").decode().splitlines()
            if f"{split}/dialogues_emotion_{split}.txt" in names:
                emotions = zf.read(f"{split}/dialogues_emotion_{split}.txt").decode().splitlines()
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, OSError) as exc:
        raise CorpusError(f"cannot read {path}: {exc}",
                          "re-import the corpus: seqtool corpus import dailydialog --from DIR"
                          ) from None
    out = []
    for i, line in enumerate(text):
        turns = split_turns(line)
        if not turns:
            continue
        d = Dialogue(turns)
        if acts is not None and i < len(acts):
            d.acts = _labels(acts[i], len(turns))
        if emotions is not None and i < len(emotions):
            d.emotions = _labels(emotions[i], len(turns))
        out.append(d)
    return out


def read_asdc(folder: Path, split: str) -> list[Dialogue]:
    """The asdc dialogues of the authors' split (train, dev (= valid) or test)."""
    purpose = ASDC_SPLITS.get(split)
    if purpose is None:
        raise CorpusError(f"asdc_ja has no split {split!r}", "splits: train, valid, test")
    out = []
    for path in sorted((folder / "dialog_json").glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        if data.get("meta", {}).get("purpose") != purpose:
            continue
        turns: list[str] = []
        speakers: list[str] = []
        for u in data.get("utterances", []):
            text = " ".join(str(u.get("text_fixed") or u.get("text", "")).split())
            if not text:
                continue
            if speakers and speakers[-1] == u.get("name"):
                turns[-1] += " " + text  # one speaker's consecutive messages: one turn
            else:
                turns.append(text)
                speakers.append(str(u.get("name")))
        if turns:
            out.append(Dialogue(turns, speakers=speakers))
    return out


def corpus_dialogues(name: str, split: str) -> list[Dialogue]:
    """The dialogues of an imported dialogue corpus's split (train, valid, test)."""
    from seqtool.data.corpora import info_of_kind, split_paths, store_dir

    info = info_of_kind(name, DIALOGUE_FORMATS, "dialogue", "dialogue corpora",
                        "or give --train-file with one dialogue per line, utterances "
                        "separated by __eou__")
    if info.format == "asdc":
        split_paths(name, "all")  # raises when the corpus is not imported
        return read_asdc(store_dir(name), split)
    return read_dailydialog(split_paths(name, split)[0])


def file_dialogues(path: str | Path, what: str = "dialogue file") -> list[Dialogue]:
    from seqtool.data.text import read_lines

    dialogues = parse_eou_lines(read_lines(path, what))
    if not dialogues:
        raise DataError(f"no dialogues in {path}", "one dialogue per line, utterances "
                        "separated by __eou__")
    return dialogues


def chat_dialogues(data: DataConfig, split: str) -> list[Dialogue]:
    """The dialogues of `split` from data.{train,valid,test}_file or data.corpus."""
    path = {"train": data.train_file, "valid": data.valid_file, "test": data.test_file}[split]
    if path:
        return file_dialogues(path, f"{split} file")
    if data.corpus:
        return corpus_dialogues(data.corpus, split)
    raise ConfigError(f"no {split} dialogues", "give --corpus dailydialog (or asdc_ja), or "
                      "--train-file and --valid-file: one dialogue per line, utterances "
                      "separated by __eou__")


# --------------------------------------------------------------------------- windows
def windows(dialogues: Iterable[Dialogue], context_turns: int
            ) -> Iterator[tuple[list[str], str]]:
    """(up to `context_turns` previous utterances, reply) for every reply."""
    for d in dialogues:
        for i in range(1, len(d.turns)):
            yield d.turns[max(0, i - context_turns): i], d.turns[i]


def encode_utterance(text: str, tokenizer: Tokenizer, max_len: int, keep: str = "last"
                     ) -> list[int]:
    """Token ids, at most `max_len` (the last ones, or the first with keep="first");
    text that tokenizes to nothing becomes one <unk>."""
    ids = tokenizer.encode(text) or [UNK]
    return ids[-max_len:] if keep == "last" else ids[:max_len]


def encode_windows(dialogues: Iterable[Dialogue], tokenizer: Tokenizer, context_turns: int,
                   max_len: int) -> list[Example]:
    """Every window, encoded; context utterances keep their last max_len tokens,
    replies their first."""
    cache: dict[str, list[int]] = {}

    def enc(text: str) -> list[int]:
        if text not in cache:
            cache[text] = tokenizer.encode(text) or [UNK]
        return cache[text]

    return [Example([enc(c)[-max_len:] for c in ctx], enc(reply)[:max_len])
            for ctx, reply in windows(dialogues, context_turns)]


def pad_dialogue_batch(examples: Sequence[Example]) -> dict[str, Tensor]:
    """Examples -> a padded, time-major batch (layout in the module docstring)."""
    rows = len(examples)
    n = max(len(e.context) for e in examples)
    steps = max(len(u) for e in examples for u in e.context)
    ctx = torch.full((steps, n, rows), PAD, dtype=torch.long)
    ctx_len = torch.zeros(n, rows, dtype=torch.long)
    for b, e in enumerate(examples):
        for t, u in enumerate(e.context):
            ctx[: len(u), t, b] = torch.tensor(u, dtype=torch.long)
            ctx_len[t, b] = len(u)
    longest = max(len(e.reply) for e in examples) + 1
    tgt = torch.full((longest, rows), PAD, dtype=torch.long)
    for b, e in enumerate(examples):
        tgt[: len(e.reply) + 1, b] = torch.tensor(e.reply + [EOS], dtype=torch.long)
    return {"ctx": ctx, "ctx_len": ctx_len,
            "turns": torch.tensor([len(e.context) for e in examples]), "tgt": tgt}


def context_batch(context: list[list[int]], rows: int = 1) -> dict[str, Tensor]:
    """One context repeated `rows` times, for decoding (no reply)."""
    batch = pad_dialogue_batch([Example(context, [UNK])] * rows)
    del batch["tgt"]
    return batch


class DialogueData(BucketedData[Example]):
    """Training and validation windows with the Trainer's data interface."""

    empty_error = ("no training or no validation replies",
                   "each dialogue needs at least two utterances")

    @staticmethod
    def lengths(e: Example) -> tuple[int, int]:
        return len(e.reply), sum(map(len, e.context))

    @staticmethod
    def pad(examples: Sequence[Example]) -> dict[str, Tensor]:
        return pad_dialogue_batch(examples)

    @staticmethod
    def ordered(examples: Sequence[Example], batch_size: int) -> Iterator[dict[str, Tensor]]:
        return batches_in_order(examples, batch_size)


def batches_in_order(examples: Sequence[Example], batch_size: int
                     ) -> Iterator[dict[str, Tensor]]:
    """Evaluation batches sorted by length (little padding); yields only batches."""
    for _, batch in indexed_batches(examples, batch_size):
        yield batch


def indexed_batches(examples: Sequence[Example], batch_size: int
                    ) -> Iterator[tuple[list[int], dict[str, Tensor]]]:
    """(positions, batch) sorted by length; the caller restores input order."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].reply),
                                                       sum(map(len, examples[i].context)), i))
    for k in range(0, len(order), batch_size):
        idx = order[k: k + batch_size]
        yield idx, pad_dialogue_batch([examples[i] for i in idx])
