"""Tokenizers: word level (whitespace, frequency cut-off, <unk>) and sentencepiece.

Both share the special ids pad=0, unk=1, bos=2, eos=3, and save themselves
into a checkpoint folder, so a model always travels with the exact tokenizer
it was trained with. Word-level ids are sorted by training frequency (the
adaptive softmax relies on that).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from seqtool.errors import CheckpointError, ConfigError

SPECIALS = ("<pad>", "<unk>", "<s>", "<eos>")
PAD, UNK, BOS, EOS = 0, 1, 2, 3
TOKENIZER_FILE = "tokenizer.json"
SPM_FILE = "spm.model"


class Tokenizer(Protocol):
    kind: str
    lowercase: bool

    @property
    def vocab_size(self) -> int: ...
    def pieces(self, text: str) -> list[str]: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def id_to_token(self, i: int) -> str: ...
    def token_to_id(self, token: str) -> int: ...
    def save(self, folder: Path) -> None: ...


def is_cjk(ch: str) -> bool:
    """Japanese/Chinese script: CJK punctuation, kana, ideographs, full-width forms."""
    o = ord(ch)
    return (0x3000 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF
            or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF)


_OPENING = frozenset("\"'([{")
_CLOSING = frozenset(".,!?;:\"')]}")


class WordTokenizer:
    """Whitespace tokens; words below `min_freq` (or beyond `max_vocab`) -> <unk>.

    Japanese is written without spaces, while word-level corpora such as
    small_parallel_enja come segmented (KyTea). So that a user can type
    "私はテニス部員です。", a token the vocabulary does not know is split where it
    is Japanese/Chinese script: the segmentation into vocabulary words with the
    lowest cost, cost(word) = log(frequency rank) (Zipf: -log p up to a
    constant), a character outside the vocabulary costing more than any word
    (Viterbi over the characters). Likewise an unknown token in other scripts is
    tried in the corpus's tokenized form: punctuation split off, a clitic split
    off ("don't" -> "don 't"), and all input lower-cased when the vocabulary has
    no upper case. Known tokens are untouched.
    """

    kind = "word"

    def __init__(self, tokens: list[str], lowercase: bool = False) -> None:
        if tuple(tokens[:4]) != SPECIALS:
            raise CheckpointError("word tokenizer vocabulary does not start with the specials",
                                  "the tokenizer file is damaged; retrain the tokenizer")
        self.tokens = tokens
        self.lowercase = lowercase
        self.index = {t: i for i, t in enumerate(tokens)}
        # no upper case in the vocabulary (a lower-cased corpus): input is lower-cased,
        # as it could only meet <unk> otherwise
        self._uncased = all(t == t.lower() for t in tokens)
        # the longest Japanese/Chinese-script word, for _segment
        self._longest = min(16, max((len(t) for t in tokens if t and is_cjk(t[0])), default=1))

    @classmethod
    def train(cls, lines: Iterable[str], min_freq: int = 1, max_vocab: int = 0,
              lowercase: bool = False) -> WordTokenizer:
        counts: Counter[str] = Counter()
        for line in lines:
            counts.update((line.lower() if lowercase else line).split())
        return cls.from_counts(counts, min_freq, max_vocab, lowercase)

    @classmethod
    def from_counts(cls, counts: Counter[str], min_freq: int = 1, max_vocab: int = 0,
                    lowercase: bool = False) -> WordTokenizer:
        """The vocabulary of word counts (data/store.py counts a streamed corpus);
        the specials are taken out of `counts`."""
        for special in SPECIALS:  # fixed ids; <eos> ends every line
            counts.pop(special, None)
        # most frequent first; ties broken alphabetically for determinism
        words = sorted((w for w, c in counts.items() if c >= min_freq),
                       key=lambda w: (-counts[w], w))
        if max_vocab:
            words = words[: max(0, max_vocab - len(SPECIALS))]
        return cls(list(SPECIALS) + words, lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def pieces(self, text: str) -> list[str]:
        if self.lowercase or self._uncased:
            text = text.lower()
        words = text.split()
        index = self.index
        if all(w in index for w in words):
            return words
        out: list[str] = []
        for w in words:
            if w in index:
                out.append(w)
                continue
            if not any(is_cjk(c) for c in w):
                out.extend(self._split_word(w))
                continue
            start = 0  # runs of CJK script are segmented; other runs stay whole
            for i in range(1, len(w) + 1):
                if i == len(w) or is_cjk(w[i]) != is_cjk(w[start]):
                    run = w[start:i]
                    out.extend(self._segment(run) if is_cjk(run[0]) else [run])
                    start = i
        return out

    def _split_word(self, w: str) -> list[str]:
        """An unknown token as the tokenized corpora write it: punctuation split off
        its edges ("books." -> "books", "."), then a clitic off its end where that
        gives known words ("don't" -> "don", "'t", or "do", "n't" as in PTB)."""
        lead, trail = [], []
        while len(w) > 1 and w[0] in _OPENING:
            lead.append(w[0])
            w = w[1:]
        while len(w) > 1 and w[-1] in _CLOSING:
            trail.append(w[-1])
            w = w[:-1]
        core = [w]
        if w not in self.index and "'" in w[1:]:
            k = w.rindex("'")
            for parts in ([w[:k], w[k:]], [w[:k - 1], w[k - 1:]]):
                if all(p in self.index for p in parts):
                    core = parts
                    break
        return lead + core + trail[::-1]

    def _segment(self, run: str) -> list[str]:
        """The lowest-cost split of `run` into vocabulary words (Viterbi)."""
        import math

        longest = self._longest
        unknown = math.log(len(self.tokens) + 1) + 10.0
        n = len(run)
        best = [0.0] + [math.inf] * n  # best[i]: cost of run[:i]
        back = [0] * (n + 1)
        for i in range(1, n + 1):
            for j in range(max(0, i - longest), i):
                rank = self.index.get(run[j:i])
                if rank is not None and rank >= len(SPECIALS):
                    cost = math.log(rank)
                elif i - j == 1:
                    cost = unknown
                else:
                    continue
                if best[j] + cost < best[i]:
                    best[i], back[i] = best[j] + cost, j
        parts: list[str] = []
        i = n
        while i > 0:
            parts.append(run[back[i]:i])
            i = back[i]
        return parts[::-1]

    def encode(self, text: str) -> list[int]:
        get = self.index.get
        return [get(w, UNK) for w in self.pieces(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.tokens[i] for i in ids if i not in (PAD, BOS, EOS))

    def id_to_token(self, i: int) -> str:
        return self.tokens[i]

    def token_to_id(self, token: str) -> int:
        return self.index.get(token, UNK)

    def is_known(self, piece: str) -> bool:
        return piece in self.index and self.index[piece] != UNK

    def save(self, folder: Path) -> None:
        data = {"kind": "word", "lowercase": self.lowercase, "tokens": self.tokens}
        (folder / TOKENIZER_FILE).write_text(json.dumps(data, ensure_ascii=False), "utf-8")


class SentencePieceTokenizer:
    """A sentencepiece unigram or BPE model (ids: pad 0, unk 1, bos 2, eos 3)."""

    def __init__(self, model_proto: bytes, kind: str, lowercase: bool = False) -> None:
        import sentencepiece as spm

        self.kind = kind
        self.lowercase = lowercase
        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(model_proto)
        except Exception:  # sentencepiece raises plain RuntimeError/OSError
            raise CheckpointError("cannot read the sentencepiece model",
                                  "the tokenizer file is damaged") from None

    @classmethod
    def train(cls, lines: Iterable[str], vocab_size: int, kind: str = "unigram",
              lowercase: bool = False) -> SentencePieceTokenizer:
        import io

        import sentencepiece as spm

        if kind not in ("unigram", "bpe"):
            raise ConfigError(f"unknown sentencepiece kind {kind!r}", "choose unigram or bpe")
        text = [(ln.lower() if lowercase else ln) for ln in lines if ln.strip()]
        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(text), model_writer=buf, vocab_size=vocab_size,
                model_type=kind, pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
                pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>", eos_piece="<eos>",
                character_coverage=0.9995, input_sentence_size=2_000_000,
                shuffle_input_sentence=True, hard_vocab_limit=False, minloglevel=2,
                num_threads=2)
        except RuntimeError as exc:
            larger = "larger" if "too small" in str(exc) or "required_chars" in str(exc) \
                else "smaller"
            raise ConfigError(f"sentencepiece training failed: {exc}",
                              f"try a {larger} tokenizer.vocab_size") from None
        return cls(buf.getvalue(), kind, lowercase)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def pieces(self, text: str) -> list[str]:
        return self.sp.encode(text.lower() if self.lowercase else text, out_type=str)

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text.lower() if self.lowercase else text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i for i in ids if i not in (PAD, BOS, EOS)])

    def id_to_token(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def token_to_id(self, token: str) -> int:
        return self.sp.piece_to_id(token)

    def is_known(self, piece: str) -> bool:
        return self.sp.piece_to_id(piece) != UNK

    def save(self, folder: Path) -> None:
        (folder / SPM_FILE).write_bytes(self.proto)
        data = {"kind": self.kind, "lowercase": self.lowercase, "model_file": SPM_FILE}
        (folder / TOKENIZER_FILE).write_text(json.dumps(data), "utf-8")


def train_tokenizer(lines: list[str], kind: str, vocab_size: int = 8000, min_freq: int = 1,
                    max_vocab: int = 0, lowercase: bool = False) -> Tokenizer:
    if kind == "word":
        return WordTokenizer.train(lines, min_freq, max_vocab, lowercase)
    return SentencePieceTokenizer.train(lines, vocab_size, kind, lowercase)


def load_tokenizer(folder: Path) -> Tokenizer:
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"no {TOKENIZER_FILE} in {folder}",
                              "a seqtool checkpoint folder holds its tokenizer")
    try:
        data = json.loads(path.read_text("utf-8"))
        kind = data["kind"]
        if kind == "word":
            return WordTokenizer(list(data["tokens"]), bool(data.get("lowercase", False)))
        name = str(data["model_file"])
        if Path(name).name != name or name in ("", ".", ".."):  # no path out of the folder
            raise CheckpointError(f"{path} names a file outside its folder: {name!r}",
                                  "the checkpoint is damaged or crafted; do not use it")
        proto = (folder / name).read_bytes()
        return SentencePieceTokenizer(proto, kind, bool(data.get("lowercase", False)))
    except (ValueError, KeyError, TypeError, OSError):
        raise CheckpointError(f"tokenizer in {folder} is damaged",
                              "retrain or re-download the checkpoint") from None
