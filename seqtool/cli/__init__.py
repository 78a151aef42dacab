"""The `seqtool` command line (click). Heavy imports live inside command bodies
so that `seqtool --help` stays instant. Nothing below the CLI imports it."""

from seqtool.cli import chat, data, lab, lm, runs, translate, word2vec  # noqa: F401 (registers)
from seqtool.cli.app import cli, main

__all__ = ["cli", "main"]
