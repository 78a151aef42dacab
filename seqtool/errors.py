"""The SeqtoolError hierarchy: every user-caused failure is one of these.

`cli.main()` prints `error: <message>` and `hint: <hint>` to stderr and exits
with code 2; a traceback only appears with `--debug` or `SEQTOOL_DEBUG=1`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SeqtoolError(Exception):
    """Base class: a message for the user plus an optional hint."""

    exit_code = 2
    every_rank = False  # under torchrun: raised alike on every rank, so rank 0 alone says it

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(SeqtoolError):
    """Unknown key, wrong type or out-of-range value in a config or flag."""


class DataError(SeqtoolError):
    """Missing, empty, binary or badly encoded input data."""


class CorpusError(DataError):
    """Unknown corpus name, checksum mismatch, corpus not imported."""


class CheckpointError(SeqtoolError):
    """Missing, truncated, corrupted or wrong-kind checkpoint."""


class TrainingError(SeqtoolError):
    """Training cannot go on (non-finite loss, incompatible resume)."""


class InputError(SeqtoolError):
    """Bad text given on the command line (empty prompt and the like)."""


class Interrupted(SeqtoolError):
    """Ctrl-C: work was saved where possible."""

    exit_code = 130


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for `word` among `choices`, or None."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return None
