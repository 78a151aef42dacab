"""Training files read as streams, never whole: the lines of a (gzip) text file
decoded a piece at a time with read_lines' checks, and the two aligned files of a
parallel training split (what data/store.py and data/lmstore.py tokenise)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqtool.errors import DataError

READ_CHARS = 1 << 20  # characters decoded at a time


def iter_lines(path: str | Path, gz: bool = False, what: str = "file") -> Iterator[str]:
    """The lines of a UTF-8 text file (gzip-compressed with `gz`), streamed: exactly
    the lines `read_lines` (str.splitlines, a leading BOM dropped) returns, in 1 MiB
    pieces. Raises read_lines' DataError for a missing, empty, binary or non-UTF-8 file."""
    import gzip

    from seqtool.data.text import read_lines

    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        read_lines(p, what)  # the precise error
    raw: Any = gzip.open(p, "rb") if gz else open(p, "rb")
    with raw:
        head = raw.read(1 << 20)
        if b"\x00" in head:
            raise DataError(f"{what} looks binary (NUL bytes): {p}", "give a UTF-8 text file")
        if not head.strip() and len(head) < (1 << 20):
            raise DataError(f"{what} is empty: {p}", "give a file with text in it")
        text = io.TextIOWrapper(io.BufferedReader(_Prefixed(head, raw)),
                                encoding="utf-8" if gz else "utf-8-sig", newline="")
        carry = ""
        try:
            for chunk in iter(lambda: text.read(READ_CHARS), ""):
                parts = (carry + chunk).splitlines(keepends=True)
                carry = ""
                last = parts[-1] if parts else ""
                if last and (last.endswith("\r") or last.splitlines()[0] == last):
                    carry = parts.pop()  # unfinished, or the first half of a \r\n
                for part in parts:
                    yield part.splitlines()[0]
        except UnicodeDecodeError:
            if not gz:
                read_lines(p, what)  # the precise error (line, byte)
            raise DataError(f"{what} is not UTF-8: {p}", "convert it to UTF-8") from None
        if carry:
            yield carry.splitlines()[0]


class _Prefixed(io.RawIOBase):
    """A binary stream with `head` (already read) put back in front."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class ParallelFiles:
    """The two line-aligned files of a training split (gzip-compressed with `gz`)."""

    src: Path
    tgt: Path
    gz: bool = False

    def pairs(self, counts: dict[str, int] | None = None) -> Iterator[tuple[str, str]]:
        """Aligned (source, target) lines, pairs with an empty side dropped (counted in
        counts["skipped"]), as parallel.align_lines does, streamed."""
        counts = counts if counts is not None else {}
        counts["skipped"] = counts["pairs"] = 0
        src = iter_lines(self.src, self.gz, "source file")
        tgt = iter_lines(self.tgt, self.gz, "target file")
        n_src = n_tgt = 0
        for s in src:
            n_src += 1
            t = next(tgt, None)
            if t is None:
                break
            n_tgt += 1
            if s.strip() and t.strip():
                counts["pairs"] += 1
                yield s, t
            else:
                counts["skipped"] += 1
        n_src += sum(1 for _ in src)
        n_tgt += sum(1 for _ in tgt)
        if n_src != n_tgt:
            raise DataError(f"parallel files are not aligned: {self.src} has {n_src} lines, "
                            f"{self.tgt} has {n_tgt}",
                            "each source line needs its translation on the same line of the "
                            "target file")
        if not counts["pairs"]:
            raise DataError(f"no sentence pairs in {self.src} / {self.tgt} (every pair has an "
                            "empty side)", "give files with text on the same lines")

    def content_hash(self) -> str:
        from seqtool.data.corpora import sha256_file

        return f"{sha256_file(self.src)}:{sha256_file(self.tgt)}"


def train_files(data: Any) -> ParallelFiles:
    """The training files of a DataConfig: --train-src/--train-tgt, or the corpus's
    train split (checked as parallel.corpus_pairs checks it)."""
    from seqtool.data.corpora import get_info, split_paths
    from seqtool.data.parallel import corpus_pairs, translation_split
    from seqtool.errors import ConfigError

    if data.train_src or data.train_tgt:
        if not (data.train_src and data.train_tgt):
            translation_split(data, "train")  # the error for one missing side
        return ParallelFiles(Path(data.train_src), Path(data.train_tgt))
    if not data.corpus:
        translation_split(data, "train")  # raises "no train data"
    info = get_info(data.corpus)
    if not data.src_lang or not data.tgt_lang or data.src_lang == data.tgt_lang \
            or not {data.src_lang, data.tgt_lang} <= set(info.languages) \
            or info.format not in ("parallel", "parallel-gz"):
        corpus_pairs(data.corpus, "train", data.src_lang, data.tgt_lang)  # raises
        raise ConfigError(f"{data.corpus} cannot be used for translation", "")
    (src,), (tgt,) = (split_paths(data.corpus, "train", lang)
                      for lang in (data.src_lang, data.tgt_lang))
    return ParallelFiles(src, tgt, info.format == "parallel-gz")
