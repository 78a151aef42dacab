"""The `seqtool` command line (click). Heavy imports live inside command bodies
so that `seqtool --help` stays instant. Nothing below the CLI imports it."""

from seqtool.cli import (  # noqa: F401 (registers)
    chat, data, lab, lm, runs, serve, translate, word2vec)
from seqtool.cli.app import cli, main

__all__ = ["cli", "main"]
