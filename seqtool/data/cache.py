"""Tokenize a text file once, reuse the language-model token stream afterwards.

`cached_token_stream(path, tokenizer)` returns the same 1-D int64 tensor as
`seqtool.data.lm.encode_stream(read_lines(path), tokenizer)`: every line,
blank ones included, as its ids followed by <eos> (id 3).

How it caches, and why two layers:

- The key is sha256(file bytes) + a fingerprint of the tokenizer (sha256 of
  the files `tokenizer.save` writes: tokenizer.json and spm.model). Editing
  the file or retraining the tokenizer gives a new key; moving the file does not.
- First call (miss): Hugging Face `datasets` reads the file into its Arrow
  cache (`load_dataset("text")` under <cache_dir>/datasets) and maps it to ids
  in batches. The finished stream is then written to
  <cache_dir>/streams/<key>.safetensors (atomic write: temp file + os.replace).
- Later calls (hit): hash the file, read the safetensors file. No `datasets`
  import at all: importing it alone costs about a second, while the hit
  (hash + read) takes tens of milliseconds for WikiText-2.

A damaged or foreign cache file is ignored and rebuilt. Library code: no
printing; `datasets` progress bars are switched off.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqtool.data.corpora import seqtool_home, sha256_file
from seqtool.data.tokenizer import EOS, Tokenizer
from seqtool.errors import DataError

if TYPE_CHECKING:
    from torch import Tensor

CACHE_VERSION = "3"  # bump when the stream layout or a tokenizer's encoding changes
# str.splitlines() breaks lines at these too; datasets' text reader does not.
_EXTRA_LINE_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def default_cache_dir() -> Path:
    return seqtool_home() / "cache"


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """sha256 over the files the tokenizer saves (names and bytes)."""
    h = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(Path(tmp))
        for f in sorted(Path(tmp).iterdir()):
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def stream_key(path: Path, tokenizer: Tokenizer) -> str:
    parts = f"v{CACHE_VERSION}:{sha256_file(path)}:{tokenizer_fingerprint(tokenizer)}"
    return hashlib.sha256(parts.encode()).hexdigest()


def cached_token_stream(path: str | Path, tokenizer: Tokenizer,
                        cache_dir: str | Path | None = None) -> Tensor:
    """The LM token stream of `path` (1-D int64), tokenized once and then cached.

    `cache_dir` defaults to $SEQTOOL_HOME/cache. Raises DataError for a missing,
    empty, binary or non-UTF-8 file, as `read_lines` does.
    """
    path = Path(path)
    _check_file(path)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = stream_key(path, tokenizer)
    target = root / "streams" / f"{key}.safetensors"
    stream = _load_stream(target, key)
    if stream is None:
        stream = _tokenize(path, tokenizer, root / "datasets", key)
        _save_stream(target, stream, key, path)
    return stream


def _check_file(path: Path) -> None:
    """Cheap checks before hashing; `read_lines` gives the precise error."""
    from seqtool.data.text import read_lines

    if not path.is_file():
        read_lines(path, "text file")
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    if b"\x00" in head or (not head.strip() and path.stat().st_size <= len(head)):
        read_lines(path, "text file")


def _load_stream(target: Path, key: str) -> Tensor | None:
    if not target.is_file():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    try:
        with safe_open(str(target), framework="pt") as fh:
            if (fh.metadata() or {}).get("key") != key:
                return None
            return fh.get_tensor("ids")
    except (SafetensorError, OSError, KeyError, ValueError):
        return None  # damaged: rebuild


def _save_stream(target: Path, stream: Tensor, key: str, source: Path) -> None:
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    meta = {"key": key, "source": str(source), "tokens": str(stream.numel()),
            "version": CACHE_VERSION}
    save_file({"ids": stream.contiguous()}, str(tmp), metadata=meta)
    os.replace(tmp, target)


def _tokenize(path: Path, tokenizer: Tokenizer, datasets_dir: Path, key: str) -> Tensor:
    """Read `path` through `datasets` (Arrow cache) and map it to one id stream."""
    import datasets
    import numpy as np
    import torch

    from seqtool.data.text import read_lines

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset("text", data_files=str(path), split="train",
                                   cache_dir=str(datasets_dir), encoding="utf-8-sig")
    except Exception as exc:  # datasets wraps decode errors in its own exception types
        read_lines(path, "text file")  # raises the precise DataError (line, byte)
        raise DataError(f"cannot read {path} with datasets: {exc}",
                        "check that it is a UTF-8 text file") from None

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        out = []
        for text in batch["text"]:
            ids: list[int] = []
            for line in _EXTRA_LINE_BREAKS.split(text):
                ids.extend(tokenizer.encode(line))
                ids.append(EOS)
            out.append(ids)
        return {"ids": out}

    # new_fingerprint: our key, so datasets never tries to hash the tokenizer.
    ids = ds.map(encode, batched=True, batch_size=4096, remove_columns=["text"],
                 new_fingerprint=key, keep_in_memory=True)
    flat = ids.data.column("ids").combine_chunks().flatten().to_numpy()
    return torch.from_numpy(np.array(flat, dtype=np.int64))  # a writable copy
