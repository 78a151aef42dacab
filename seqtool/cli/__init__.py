"""The `seqtool` command line (click). Heavy imports live inside command bodies
so that `seqtool --help` stays instant. Nothing below the CLI imports it."""

from seqtool.cli import data, lab, lm, translate  # noqa: F401  (registers the commands)
from seqtool.cli.app import cli, main

__all__ = ["cli", "main"]
