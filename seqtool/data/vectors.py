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
from typing import TYPE_CHECKING, Any

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
        unknown = [w for w, r in zip(words, rows) if r is None]
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
        for word, row in zip(words, matrix):
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
    if not path.is_file():
        raise DataError(f"vectors file not found: {path}",
                        "give a word2vec text file (seqtool export-vectors, gensim)")
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise DataError(f"{path} looks binary (NUL bytes)", BINARY_HINT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not UTF-8 (byte {exc.start})",
                        BINARY_HINT) from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{path} is empty" if not lines else f"{path}: line 1 is empty",
                        "the first line is the header 'VOCAB DIM'")
    head = lines[0].split()
    if len(head) == 2 and all(h.isdigit() for h in head):
        count, dim, first = int(head[0]), int(head[1]), 1
        if dim < 1:
            raise DataError(f"{path}: line 1: the dimension is {dim}", "it must be at least 1")
        if len(lines) - 1 != count:
            more = "more" if len(lines) - 1 > count else "fewer"
            raise DataError(f"{path}: line 1 announces {count:,} words but {len(lines) - 1:,} "
                            f"lines follow ({more})", "fix the header or the file's end")
    else:
        count, dim, first = len(lines), len(head) - 1, 0  # no header (GloVe)
        if dim < 1:
            raise DataError(f"{path}: line 1: expected the header 'VOCAB DIM' or a word "
                            "followed by its numbers", "is this a word2vec text file?")
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


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- benchmarks
def _case_folded(vecs: WordVectors, restrict: int) -> tuple[dict[str, int], np.ndarray]:
    """As gensim's evaluations: UPPER(word) -> row of its first (most frequent) spelling
    among the first `restrict` words, and each of those rows' canonical row."""
    import numpy as np

    rows: dict[str, int] = {}
    words = vecs.words[:restrict] if restrict > 0 else vecs.words
    for i, w in enumerate(words):
        rows.setdefault(w.upper(), i)
    canon = np.array([rows[w.upper()] for w in words], dtype=np.int64)
    return rows, canon


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata)."""
    import numpy as np

    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def word_pair_correlation(vecs: WordVectors, path: str | Path, restrict: int = 300000
                          ) -> dict[str, float | int]:
    """Spearman (and Pearson) correlation between human similarity scores and cosine
    similarity, over the pairs whose words are both known (case-insensitive), as
    gensim's evaluate_word_pairs. File: `word<TAB>word<TAB>score` lines, # comments."""
    import numpy as np

    from seqtool.data.text import read_lines

    rows, _ = _case_folded(vecs, restrict)
    gold, model, oov = [], [], 0
    for n, line in enumerate(read_lines(path, "word-pair file"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            a, b, score = parts[0].strip().upper(), parts[1].strip().upper(), float(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"{path}: line {n} is not 'word TAB word TAB score'",
                            "WordSim-353 format: two words and a number per line") from None
        if a not in rows or b not in rows:
            oov += 1
            continue
        gold.append(score)
        model.append(float(vecs.unit[rows[a]] @ vecs.unit[rows[b]]))
    if len(gold) < 2:
        raise DataError(f"fewer than two pairs of {path} have both words in the vocabulary",
                        "train on more text or lower --min-count")
    g, m = np.array(gold), np.array(model)
    return {"spearman": _pearson(_ranks(g), _ranks(m)), "pearson": _pearson(g, m),
            "pairs": len(gold), "oov_pairs": oov, "oov_ratio": oov / (oov + len(gold))}


def read_analogies(path: str | Path) -> list[tuple[str, list[tuple[int, list[str]]]]]:
    """Sections (': name' lines) of 4-word questions, with their line numbers."""
    from seqtool.data.text import read_lines

    sections: list[tuple[str, list[tuple[int, list[str]]]]] = []
    for n, line in enumerate(read_lines(path, "analogy file"), start=1):
        if not line.strip():
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.split()
        if len(words) != 4:
            raise DataError(f"{path}: line {n} has {len(words)} words, expected 4",
                            "Google analogy format: 'a b c d' lines under ': section' lines")
        if not sections:
            raise DataError(f"{path}: line {n} comes before the first ': section' line",
                            "start the file with a section line, e.g. ': capital-world'")
        sections[-1][1].append((n, [w.upper() for w in words]))
    return sections


def analogy_accuracy(vecs: WordVectors, path: str | Path, restrict: int = 30000,
                     chunk: int = 512) -> dict[str, Any]:
    """Accuracy on 'a b c d' questions (d = b - a + c, 3CosAdd), as gensim's
    evaluate_word_analogies: case-insensitive; only the first `restrict` words count,
    as answers and as question words; questions with other words are skipped; a, b
    and c (any spelling) are never the answer. Per section and overall; sections
    named gram* are syntactic, the others semantic."""
    import numpy as np

    rows, canon = _case_folded(vecs, restrict)
    unit = vecs.unit[: len(canon)]  # (R, D)
    out_sections, qs, owner = [], [], []
    skipped = 0
    for s, (name, questions) in enumerate(read_analogies(path)):
        out_sections.append({"section": name, "correct": 0, "total": 0})
        for _, words in questions:
            if all(w in rows for w in words):
                qs.append([rows[w] for w in words])
                owner.append(s)
            else:
                skipped += 1
    q = np.array(qs, dtype=np.int64).reshape(-1, 4)  # (M, 4) rows of a, b, c, d
    right = np.zeros(len(q), dtype=bool)
    for lo in range(0, len(q), chunk):
        a, b, c, d = q[lo: lo + chunk].T
        query = unit[b] - unit[a] + unit[c]  # (m, D); norm does not change the argmax
        sims = query @ unit.T  # (m, R)
        for x in (a, b, c):
            sims[canon[None, :] == x[:, None]] = -np.inf
        right[lo: lo + chunk] = canon[sims.argmax(1)] == d
    for s, ok in zip(owner, right.tolist()):
        out_sections[s]["total"] += 1
        out_sections[s]["correct"] += int(ok)

    def acc(pick: list[dict[str, Any]]) -> float | None:
        total = sum(x["total"] for x in pick)
        return sum(x["correct"] for x in pick) / total if total else None

    syntactic = [x for x in out_sections if x["section"].startswith("gram")]
    semantic = [x for x in out_sections if not x["section"].startswith("gram")]
    for x in out_sections:
        x["accuracy"] = acc([x])
    return {"accuracy": acc(out_sections), "correct": int(right.sum()),
            "answered": len(q), "skipped_oov": skipped, "semantic": acc(semantic),
            "syntactic": acc(syntactic), "sections": out_sections}
