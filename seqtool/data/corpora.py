"""The corpus catalog (corpora/*.toml, shipped as seqtool.catalog) and the
local corpus store ($SEQTOOL_HOME/corpora/<name>/, default ~/.seqtool).

`import_corpus` copies files from a local folder and verifies their sha256;
`fetch_corpus` downloads them when online; `split_files` finds an imported
corpus's files for training and evaluation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from seqtool.errors import CorpusError, did_you_mean


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    task: str
    description: str
    license: str
    citation: str
    homepage: str = ""
    hf_dataset: str = ""
    hf_config: str = ""
    download_base: str = ""
    splits: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


def seqtool_home() -> Path:
    return Path(os.environ.get("SEQTOOL_HOME") or Path.home() / ".seqtool")


def store_dir(name: str) -> Path:
    return seqtool_home() / "corpora" / name


def catalog() -> dict[str, CorpusInfo]:
    out = {}
    for entry in resources.files("seqtool.catalog").iterdir():
        if entry.name.endswith(".toml"):
            raw = tomllib.loads(entry.read_text(encoding="utf-8"))
            out[raw["name"]] = CorpusInfo(**raw)
    return dict(sorted(out.items()))


def get_info(name: str) -> CorpusInfo:
    known = catalog()
    if name not in known:
        raise CorpusError(f"unknown corpus {name!r}",
                          (did_you_mean(name, known) or "") + " known corpora: "
                          + ", ".join(known))
    return known[name]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_present(name: str) -> bool:
    info = get_info(name)
    d = store_dir(name)
    return all((d / f).is_file() for f in info.files)


def import_corpus(name: str, source: str | Path) -> Path:
    """Copy a corpus's files from `source`, verifying each checksum first."""
    info = get_info(name)
    src = Path(source)
    if not src.is_dir():
        raise CorpusError(f"not a folder: {src}", f"give the folder that holds {name}'s files")
    missing = [f for f in info.files if not (src / f).is_file()]
    if missing:
        raise CorpusError(f"{src} lacks {', '.join(missing)}",
                          f"{name} needs: {', '.join(info.files)}")
    for fname, meta in info.files.items():
        got = sha256_file(src / fname)
        if got != meta["sha256"]:
            raise CorpusError(f"checksum mismatch for {src / fname}: sha256 {got[:12]}..., "
                              f"expected {meta['sha256'][:12]}...",
                              "the file differs from the catalogued one; re-download it")
    dest = store_dir(name)
    tmp = dest.with_name(f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for fname in info.files:
        (tmp / fname).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / fname, tmp / fname)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def fetch_corpus(name: str, timeout: float = 20.0) -> Path:
    """Download a corpus's files from its catalogued address, verifying checksums."""
    import tempfile
    import urllib.error
    import urllib.request

    info = get_info(name)
    if not info.download_base:
        raise CorpusError(f"{name} has no download address in the catalog",
                          f"get it from {info.homepage} and run seqtool corpus import")
    with tempfile.TemporaryDirectory() as tmp:
        for fname in info.files:
            url = info.download_base + fname
            target = Path(tmp) / fname
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp, open(target, "wb") as fh:
                    shutil.copyfileobj(resp, fh)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise CorpusError(f"cannot download {url}: {reason}",
                                  f"offline? download it elsewhere, then: seqtool corpus import "
                                  f"{name} --from DIR") from None
        return import_corpus(name, tmp)


def split_files(name: str) -> dict[str, Path]:
    """split name -> file path of an imported corpus."""
    info = get_info(name)
    if not is_present(name):
        raise CorpusError(f"corpus {name!r} is not imported",
                          f"run: seqtool corpus import {name} --from DIR  (or seqtool corpus "
                          f"fetch {name} when online)")
    d = store_dir(name)
    return {split: d / f for split, f in info.splits.items() if isinstance(f, str)}
