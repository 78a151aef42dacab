"""Reading user text files safely: one clear error for each way a file is bad."""

from __future__ import annotations

from pathlib import Path

from seqtool.errors import DataError


def read_lines(path: str | Path, what: str = "file") -> list[str]:
    """All lines of a UTF-8 text file, without line endings.

    Missing, empty, binary (NUL bytes) or non-UTF-8 files raise DataError.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} not found: {p}", "check the path")
    if p.is_dir():
        raise DataError(f"{what} is a folder, not a file: {p}", "give a text file")
    data = p.read_bytes()
    if not data.strip():
        raise DataError(f"{what} is empty: {p}", "give a file with text in it")
    if b"\x00" in data[:1 << 20]:
        raise DataError(f"{what} looks binary (NUL bytes): {p}", "give a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{what} is not UTF-8 (line {line}, byte {exc.start}): {p}",
                        "convert it, e.g. iconv -f latin1 -t utf-8 IN > OUT") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.splitlines()
