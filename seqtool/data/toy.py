"""Toy translation tasks from "Deep Learning from Scratch 2" (chapters 7 and 8),
generated here with a seed: date normalisation and addition.

    date_pairs      "september 27, 1994" / "9/27/94" / "TUESDAY, SEPTEMBER 27, 1994"
                    ... -> "1994-09-27"
    addition_pairs  "16+75" -> "91" (optionally the source reversed: "57+61")

They are read character by character: `chars` writes a string as
space-separated characters (a space becomes <sp>, as the peers' benchmark
data), so a WordTokenizer over those is a character vocabulary.
"""

from __future__ import annotations

import datetime
import random
from pathlib import Path

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SPACE = "<sp>"


def _case(word: str, rng: random.Random) -> str:
    return rng.choice((word, word.capitalize(), word.upper()))


def format_date(d: datetime.date, style: int, rng: random.Random) -> str:
    """One of seven free-form spellings of `d` (two-digit years: 70-99 -> 19xx,
    00-69 -> 20xx, so the mapping is learnable)."""
    month = _case(MONTHS[d.month - 1], rng)
    day = _case(WEEKDAYS[d.weekday()], rng)
    if style == 0:
        return f"{month} {d.day}, {d.year}"  # september 27, 1994
    if style == 1:
        return f"{month[:3]} {d.day}, {d.year}"  # Sep 27, 1994
    if style == 2:
        return f"{d.month}/{d.day}/{d.year % 100:02d}"  # 9/27/94
    if style == 3:
        return f"{day}, {month} {d.day}, {d.year}"  # tuesday, september 27, 1994
    if style == 4:
        return f"{d.day} {month} {d.year}"  # 27 september 1994
    if style == 5:
        return f"{day[:3]}, {d.day} {month[:3]} {d.year}"  # Tue, 27 Sep 1994
    return f"{d.year}/{d.month}/{d.day}"  # 1994/9/27


def date_pairs(n: int, seed: int = 0, first_year: int = 1970,
               last_year: int = 2069) -> list[tuple[str, str]]:
    """n (free-form date, ISO date) pairs; years outside 1970-2069 would make the
    two-digit format ambiguous."""
    rng = random.Random(seed)
    lo = datetime.date(first_year, 1, 1).toordinal()
    hi = datetime.date(last_year, 12, 31).toordinal()
    out = []
    for _ in range(n):
        d = datetime.date.fromordinal(rng.randint(lo, hi))
        out.append((format_date(d, rng.randrange(7), rng), d.isoformat()))
    return out


def addition_pairs(n: int, seed: int = 0, digits: int = 3,
                   reverse: bool = False) -> list[tuple[str, str]]:
    """n ("a+b", "a+b's sum") pairs with a, b uniform in [0, 10**digits);
    reverse=True writes the source backwards ("16+75" -> "57+61")."""
    rng = random.Random(seed)
    top = 10 ** digits - 1
    out = []
    for _ in range(n):
        a, b = rng.randint(0, top), rng.randint(0, top)
        src = f"{a}+{b}"
        out.append((src[::-1] if reverse else src, str(a + b)))
    return out


def chars(text: str) -> str:
    """'may 1' -> 'm a y <sp> 1': one token per character for a WordTokenizer."""
    return " ".join(SPACE if c == " " else c for c in text)


def unchars(text: str) -> str:
    """The inverse of `chars`."""
    return "".join(" " if tok == SPACE else tok for tok in text.split())


def write_pairs(pairs: list[tuple[str, str]], src_path: str | Path, tgt_path: str | Path,
                char_level: bool = True) -> None:
    """Write pairs as two line-aligned files (character tokens by default)."""
    conv = chars if char_level else str
    Path(src_path).write_text("".join(conv(s) + "\n" for s, _ in pairs), "utf-8")
    Path(tgt_path).write_text("".join(conv(t) + "\n" for _, t in pairs), "utf-8")
