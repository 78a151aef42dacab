"""The package's version, in one place: pyproject.toml reads it, `seqtool --version`
prints it and every checkpoint records it."""

__version__ = "0.1.0"
