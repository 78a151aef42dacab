"""Shared fixtures: every test gets its own empty SEQTOOL_HOME (never ~/.seqtool),
and `corpora_dir` gives $SEQTOOL_CORPORA or skips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tiny models: one intra-op thread is fastest, and spinning OpenMP threads slow
# everything down badly when the CPU is shared (subprocess CLI tests inherit it).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def seqtool_home(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("seqtool_home")
    monkeypatch.setenv("SEQTOOL_HOME", str(home))
    return home


@pytest.fixture
def corpora_dir() -> Path:
    root = os.environ.get("SEQTOOL_CORPORA")
    if not root:
        pytest.skip("SEQTOOL_CORPORA is not set (folder holding the real corpora)")
    return Path(root)
