"""Text datasets by Hugging Face hub name (when online), for the language models.

`--hf-dataset NAME[:CONFIG]` (config `data.hf_dataset`, e.g.
"Salesforce/wikitext:wikitext-2-raw-v1") loads the dataset with `datasets`
and writes each split's text column, one row per line, to
$SEQTOOL_HOME/hub/<name>/<config>/<split>.txt (atomically, once). From there
the split is an ordinary text file: tokenized once and cached like any other
(data/cache.py). A local dataset folder (train.txt, validation.txt, ...) works
too, which is how the tests exercise this path offline.

Split names: seqtool's train / valid / test map to the dataset's train /
validation (or valid, dev) / test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from seqtool.errors import ConfigError, CorpusError, DataError

SPLIT_NAMES = {"train": ("train",), "valid": ("validation", "valid", "dev"),
               "test": ("test",)}
OFFLINE_HINT = ("check the name and the network; offline, import a local copy (seqtool corpus "
                "import NAME --from DIR) or give --train-file and --valid-file")


def parse_name(spec: str) -> tuple[str, str]:
    """"owner/name:config" -> (name, config); the config may be empty."""
    name, _, config = spec.partition(":")
    if not name.strip():
        raise CorpusError("--hf-dataset needs a dataset name",
                          'e.g. --hf-dataset "Salesforce/wikitext:wikitext-2-raw-v1"')
    return name.strip(), config.strip()


def _folder(name: str, config: str) -> Path:
    from seqtool.data.corpora import seqtool_home

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/"))
    return seqtool_home() / "hub" / safe / (config or "default")


def _check_reachable(spec: str, timeout: float = 3.0) -> None:
    """Fail in seconds, not after the hub client's retries, when the hub is unreachable."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout).close()
    except OSError as exc:
        raise CorpusError(f"cannot load {spec!r}: the Hugging Face hub ({url.hostname}) is not "
                          f"reachable ({exc.strerror or exc})", OFFLINE_HINT) from None


def hub_split_file(spec: str, split: str, column: str = "text") -> Path:
    """The text file of one split (train, valid or test) of a hub dataset, written on
    first use."""
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split {split!r} is not one of {', '.join(SPLIT_NAMES)}",
                          "a Hugging Face dataset is read as train, valid or test")
    name, config = parse_name(spec)
    folder = _folder(name, config)
    target = folder / f"{split}.txt"
    if target.is_file():
        return target
    if not Path(name).exists() and not os.environ.get("HF_DATASETS_OFFLINE"):
        _check_reachable(spec)
    import logging

    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # no retry chatter
    try:
        loaded = datasets.load_dataset(name, config or None, cache_dir=str(folder / "cache"))
    except Exception as exc:  # offline, unknown name or config: many exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorpusError(f"cannot load {spec!r} with Hugging Face datasets: {first[:300]}",
                          OFFLINE_HINT) from None
    found = next((s for s in SPLIT_NAMES[split] if s in loaded), None)
    if found is None:
        raise DataError(f"{spec} has no {split} split (it has: {', '.join(loaded)})",
                        "give that split as a file instead (--train-file / --valid-file)")
    part = loaded[found]
    if column not in part.column_names:
        raise DataError(f"{spec} has no {column!r} column (columns: "
                        f"{', '.join(part.column_names)})",
                        "set data.hf_text_column to the column that holds the text")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in part[column]:
            f.write(" ".join(str(row).splitlines()) + "\n")
    os.replace(tmp, target)
    return target
