"""Word vectors in the word2vec text format, and cosine queries over them.

The format (the C tool's `-binary 0`, gensim's `save_word2vec_format(binary=False)`):

    VOCAB DIM
    word v1 v2 ... vDIM
    ...

one word per line, fields separated by spaces, most frequent words first by
convention. Files without the header line (GloVe's) are read too; the dimension is
then that of the first line. Every way a file can be wrong raises DataError naming
the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from seqtool.errors import DataError, InputError, did_you_mean

if TYPE_CHECKING:
    import numpy as np

BINARY_HINT = ("this reads the text format; convert a binary file with gensim: KeyedVectors."
               "load_word2vec_format(IN, binary=True).save_word2vec_format(OUT)")


class WordVectors:
    """Words (unique, in file order) and their vectors; cosine queries."""

    def __init__(self, words: Sequence[str], matrix: np.ndarray) -> None:
        import numpy as np

        self.words = list(words)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)  # (V, D)
        self.index = {w: i for i, w in enumerate(self.words)}
        norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
        self.unit = self.matrix / np.maximum(norms, 1e-12)  # (V, D)
        self._lower: dict[str, int] | None = None  # lower-cased -> first row (lazy)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def find(self, word: str) -> int | None:
        """Row of `word` as is, else of its first (in a frequency-sorted file, most
        frequent) spelling equal to it lower-cased (`athens` finds `Athens`), else None."""
        if self._lower is None:
            self._lower = {}
            for i, w in enumerate(self.words):
                self._lower.setdefault(w.lower(), i)
        row = self.index.get(word)
        return self._lower.get(word.lower()) if row is None else row

    def lookup(self, words: Sequence[str]) -> list[int]:
        """Row of each word (`find`); InputError naming the unknown ones, with close
        words."""
        rows = [self.find(w) for w in words]
        unknown = [w for w, r in zip(words, rows, strict=False) if r is None]
        if unknown:
            names = ", ".join(repr(w) for w in dict.fromkeys(unknown))
            close = []
            for w in dict.fromkeys(unknown):
                hint = did_you_mean(w, self.words)
                if hint:
                    close.append(f"for {w!r}: {hint}")
            raise InputError(f"not in the vocabulary ({len(self):,} words): {names}",
                             "; ".join(close) or "no close words in the vocabulary")
        return [r for r in rows if r is not None]

    def resolve(self, words: Sequence[str]) -> list[str]:
        """Each word as the vocabulary spells it (`lookup`)."""
        return [self.words[r] for r in self.lookup(words)]

    def nearest(self, positive: Sequence[str], negative: Sequence[str] = (), top_k: int = 10,
                restrict: int = 0) -> list[tuple[str, float]]:
        """The top_k words closest (cosine) to the mean of the unit vectors of `positive`
        minus those of `negative` (3CosAdd, as gensim's most_similar), the query words
        left out; only the first `restrict` words are candidates when restrict > 0."""
        import numpy as np

        rows = self.lookup([*positive, *negative])
        pos, neg = rows[: len(positive)], rows[len(positive):]
        query = self.unit[pos].sum(0) - self.unit[neg].sum(0)  # (D,)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        unit = self.unit[:restrict] if restrict > 0 else self.unit
        sims = unit @ query  # (V',)
        sims[[i for i in pos + neg if i < sims.shape[0]]] = -np.inf
        k = min(top_k, int(np.isfinite(sims).sum()))
        if k <= 0:
            return []
        best = np.argpartition(-sims, k - 1)[:k]
        best = best[np.argsort(-sims[best], kind="stable")]
        return [(self.words[i], float(sims[i])) for i in best]

    def similarity(self, a: str, b: str) -> float:
        i, j = self.lookup([a, b])
        return float(self.unit[i] @ self.unit[j])


def write_word2vec(path: str | Path, words: Sequence[str], matrix: np.ndarray) -> None:
    """Write the text format, each float32 as the shortest decimal that reads back to
    the same value (as gensim writes them)."""
    import os

    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    matrix = np.asarray(matrix, dtype=np.float32)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{len(words)} {matrix.shape[1]}\n")
        for word, row in zip(words, matrix, strict=False):
            if not word or any(c.isspace() for c in word):
                raise DataError(f"cannot write the word {word!r}: the text format separates "
                                "fields with spaces", "use a tokenizer without such tokens")
            fh.write(word + " " + " ".join(map(str, row)) + "\n")  # shortest exact float32
    os.replace(tmp, path)


def read_word2vec(path: str | Path) -> WordVectors:
    """Read the text format (with or without the header line); DataError names the
    line of any problem."""
    import numpy as np

    path = Path(path)
    lines = _text_lines(path)
    count, dim, first = _header(lines, path)
    matrix = np.empty((count, dim), dtype=np.float32)
    words: list[str] = []
    seen: set[str] = set()
    for n, line in enumerate(lines[first:], start=first + 1):
        parts = line.split()
        if len(parts) != dim + 1:
            raise DataError(f"{path}: line {n} has {len(parts) - 1} numbers after the word, "
                            f"expected {dim}", "every line is: word v1 ... vDIM")
        try:
            matrix[n - first - 1] = [float(x) for x in parts[1:]]
        except ValueError:
            bad = next(x for x in parts[1:] if not _is_float(x))
            raise DataError(f"{path}: line {n}: {bad[:30]!r} is not a number",
                            "every line is: word v1 ... vDIM") from None
        if parts[0] in seen:
            raise DataError(f"{path}: line {n}: the word {parts[0]!r} appears twice",
                            "each word has one line")
        seen.add(parts[0])
        words.append(parts[0])
    if not np.isfinite(matrix).all():
        row = int(np.argwhere(~np.isfinite(matrix))[0][0])
        raise DataError(f"{path}: line {row + first + 1} holds a non-finite number",
                        "the vectors are damaged (nan or inf)")
    return WordVectors(words, matrix)


def _text_lines(path: Path) -> list[str]:
    """The file's lines; DataError for a missing, binary, non-UTF-8 or empty file."""
    if not path.is_file():
        raise DataError(f"vectors file not found: {path}",
                        "give a word2vec text file (seqtool export-vectors, gensim)")
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise DataError(f"{path} looks binary (NUL bytes)", BINARY_HINT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {where} is not UTF-8 (byte {exc.start})",
                        BINARY_HINT) from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{path} is empty" if not lines else f"{path}: line 1 is empty",
                        "the first line is the header 'VOCAB DIM'")
    return lines


def _header(lines: list[str], path: Path) -> tuple[int, int, int]:
    """(words, dimension, index of the first vector line) from the header 'VOCAB DIM',
    or from the first line itself when there is none (GloVe)."""
    head = lines[0].split()
    if len(head) == 2 and all(h.isdigit() for h in head):
        count, dim = int(head[0]), int(head[1])
        if dim < 1:
            raise DataError(f"{path}: line 1: the dimension is {dim}", "it must be at least 1")
        if len(lines) - 1 != count:
            more = "more" if len(lines) - 1 > count else "fewer"
            raise DataError(f"{path}: line 1 announces {count:,} words but {len(lines) - 1:,} "
                            f"lines follow ({more})", "fix the header or the file's end")
        return count, dim, 1
    if len(head) < 2:
        raise DataError(f"{path}: line 1: expected the header 'VOCAB DIM' or a word "
                        "followed by its numbers", "is this a word2vec text file?")
    return len(lines), len(head) - 1, 0


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
