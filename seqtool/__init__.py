"""seqtool: recurrent networks for text generation, translation and dialogue.

The Python API is `seqtool.load` and `seqtool.train` (with the `Model` and `Chat`
objects they give), from seqtool/api.py; they are imported on first use, so
`import seqtool` stays instant (it does not import torch):

    import seqtool

    lm = seqtool.load("lm")                          # the shipped WikiText-2 LM
    lm.predict("some of them looks like", k=5)["prediction"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqtool.version import __version__

if TYPE_CHECKING:
    from seqtool.api import Chat, Model, load, train

__all__ = ["Chat", "Model", "__version__", "load", "train"]
API = ("Chat", "Model", "load", "train")  # the stable names, from seqtool/api.py


def __getattr__(name: str) -> Any:
    if name in API:
        from seqtool import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqtool' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
