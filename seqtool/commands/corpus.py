"""`seqtool corpus list | info | import | fetch`: the catalog and the local store.

Plain functions returning JSON-ready dicts; cli.py renders them. Progress is
reported through an optional callback (file name, bytes done, bytes in all).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from seqtool.data.corpora import (CorpusInfo, Progress, catalog, fetch_corpus, get_info,
                                  import_corpus, is_present, store_dir)


def _license_short(info: CorpusInfo) -> str:
    if info.license_short:
        return info.license_short
    return info.license.split(";")[0].split("(")[0].strip()[:24]


def _row(info: CorpusInfo) -> dict[str, Any]:
    return {"name": info.name, "task": info.task, "files": len(info.files),
            "bytes": info.total_bytes, "license": _license_short(info),
            "present": is_present(info.name)}


def list_corpora() -> list[dict[str, Any]]:
    """One row per catalogued corpus, with whether it is in the local store."""
    return [_row(info) for info in catalog().values()]


def corpus_info(name: str) -> dict[str, Any]:
    """The full catalog entry plus the store location and presence."""
    info = get_info(name)
    return {
        **_row(info),
        "description": info.description, "format": info.format,
        "languages": list(info.languages), "license_full": info.license,
        "citation": info.citation, "homepage": info.homepage,
        "hf_dataset": info.hf_dataset, "hf_config": info.hf_config,
        "download_base": info.download_base, "splits": dict(info.splits),
        "store": str(store_dir(name)),
        "file_list": [{"path": f, "bytes": int(m["bytes"]), "sha256": m["sha256"]}
                      for f, m in info.files.items()],
    }


def _summary(name: str, dest: Path, seconds: float) -> dict[str, Any]:
    info = get_info(name)
    return {"name": name, "path": str(dest), "files": len(info.files),
            "bytes": info.total_bytes, "seconds": round(seconds, 3)}


def import_from(name: str, source: Path, on_progress: Progress | None = None) -> dict[str, Any]:
    """Copy NAME's files from SOURCE into the store, verifying every sha256."""
    start = time.perf_counter()
    dest = import_corpus(name, source, on_progress)
    return _summary(name, dest, time.perf_counter() - start)


def fetch(name: str, on_progress: Progress | None = None) -> dict[str, Any]:
    """Download NAME from its catalogued address, verify and store it."""
    start = time.perf_counter()
    dest = fetch_corpus(name, on_progress=on_progress)
    return _summary(name, dest, time.perf_counter() - start)
