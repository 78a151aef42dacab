"""seqtool: recurrent networks for text generation, translation and dialogue."""

__version__ = "0.1.0"
