"""The corpus catalog, import / fetch into the store, and the `seqtool corpus` CLI."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.data import corpora
from seqtool.data.corpora import CorpusInfo
from seqtool.errors import CorpusError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fake_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes],
                 name: str = "toy", **kw: object) -> Path:
    """Write `files` under tmp_path/src and make `name` the only catalog entry."""
    src = tmp_path / "src"
    for fname, data in files.items():
        (src / fname).parent.mkdir(parents=True, exist_ok=True)
        (src / fname).write_bytes(data)
    raw: dict = {"name": name, "task": "lm", "description": "d", "license": "MIT",
                 "citation": "c", "download_base": "https://example.invalid/",
                 "splits": {"train": "train.txt"},
                 "files": {f: {"sha256": _sha(d), "bytes": len(d)} for f, d in files.items()}}
    raw.update(kw)
    info = CorpusInfo(**raw)
    monkeypatch.setattr(corpora, "catalog", lambda: {name: info})
    return src


# --------------------------------------------------------------------------- catalog
def test_catalog_entries_are_complete() -> None:
    cat = corpora.catalog()
    expected = {"ptb", "wikitext-2", "multi30k", "small_parallel_enja", "dailydialog",
                "asdc_ja", "date", "addition"}
    assert expected <= set(cat)
    for name, info in cat.items():
        assert info.task in corpora.TASKS, name
        assert info.license and info.citation and info.license_short, name
        assert info.download_base.startswith("https://"), name
        assert info.files, name
        for fname, meta in info.files.items():
            assert re.fullmatch(r"[0-9a-f]{64}", meta["sha256"]), (name, fname)
            assert isinstance(meta["bytes"], int) and meta["bytes"] > 0, (name, fname)
            assert not Path(fname).is_absolute() and ".." not in Path(fname).parts


def test_catalog_splits_name_catalogued_files() -> None:
    for name, info in corpora.catalog().items():
        assert info.splits, name
        for split, pattern in info.splits.items():
            langs = info.languages if "{lang}" in pattern else [""]
            for lang in langs:
                pat = pattern.replace("{lang}", lang)
                hits = [f for f in info.files if Path(f).match(pat)] if "*" in pat else \
                    [f for f in info.files if f == pat]
                assert hits, (name, split, pat)


def test_multi30k_splits_per_language(tmp_path: Path) -> None:
    info = corpora.get_info("multi30k")
    assert info.languages == ["en", "de", "fr", "cs"]
    assert info.splits["train"] == "train.{lang}.gz"
    assert info.url("train.de.gz").endswith("/data/task1/raw/train.de.gz")
    assert info.url("image_splits/val.txt").endswith("/data/task1/image_splits/val.txt")


def test_unknown_corpus_lists_known_ones() -> None:
    with pytest.raises(CorpusError) as err:
        corpora.get_info("wikitext2")
    assert "wikitext-2" in err.value.hint and "multi30k" in err.value.hint


# --------------------------------------------------------------------------- import
def test_import_verifies_and_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"train.txt": b"a b c\n\nd e\n", "sub/dir/x.txt": b"nested\n"}
    src = _fake_corpus(tmp_path, monkeypatch, files)
    seen: list[tuple[str, int, int]] = []
    dest = corpora.import_corpus("toy", src, lambda f, d, t: seen.append((f, d, t)))
    assert dest == corpora.store_dir("toy")
    assert dest.is_relative_to(Path(os.environ["SEQTOOL_HOME"]))
    for fname, data in files.items():
        assert (dest / fname).read_bytes() == data
    assert corpora.is_present("toy")
    assert seen[-1][1] == seen[-1][2] == sum(len(d) for d in files.values())
    assert corpora.split_files("toy") == {"train": dest / "train.txt"}


def test_checksum_mismatch_names_file_and_keeps_store(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    src = _fake_corpus(tmp_path, monkeypatch, {"train.txt": b"good\n"})
    corpora.import_corpus("toy", src)
    (src / "train.txt").write_bytes(b"bad\n")
    with pytest.raises(CorpusError, match="checksum mismatch for .*train.txt"):
        corpora.import_corpus("toy", src)
    assert (corpora.store_dir("toy") / "train.txt").read_bytes() == b"good\n"
    assert not list(corpora.store_dir("toy").parent.glob(".toy.tmp-*"))


def test_missing_files_are_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _fake_corpus(tmp_path, monkeypatch, {"train.txt": b"x\n", "valid.txt": b"y\n"})
    (src / "valid.txt").unlink()
    with pytest.raises(CorpusError, match="lacks 1 of toy's 2 files: valid.txt"):
        corpora.import_corpus("toy", src)
    with pytest.raises(CorpusError, match="not a folder"):
        corpora.import_corpus("toy", tmp_path / "nowhere")


def test_not_imported_corpus_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CorpusError) as err:
        corpora.split_files("ptb")
    assert "seqtool corpus import ptb" in err.value.hint


# --------------------------------------------------------------------------- fetch
def test_fetch_offline_gives_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kw: object) -> None:
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(CorpusError) as err:
        corpora.fetch_corpus("date")
    assert "cannot download" in err.value.message and "Name or service" in err.value.message
    assert "seqtool corpus import date --from DIR" in err.value.hint
    assert not corpora.store_dir("date").exists()


def test_fetch_downloads_remote_paths_and_verifies(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"train.txt": b"hello world\n", "meta/a.json": b"{}\n"}
    _fake_corpus(tmp_path, monkeypatch, files)
    info = corpora.get_info("toy")
    info.files["meta/a.json"]["remote"] = "data/main/a.json"
    served = {"https://example.invalid/train.txt": files["train.txt"],
              "https://example.invalid/data/main/a.json": files["meta/a.json"]}
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: io.BytesIO(served[url]))
    dest = corpora.fetch_corpus("toy")
    assert (dest / "meta/a.json").read_bytes() == b"{}\n"


# --------------------------------------------------------------------------- reading formats
def test_corpus_lines_per_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train/dialogues_train.txt", "Hi . __eou__ Hello ! __eou__\nBye __eou__\n")
    files = {"train.en.gz": gzip.compress(b"a cat\n"), "train.de.gz": gzip.compress(b"eine\n"),
             "train.zip": buf.getvalue(),
             "dialog_text/001.tsv": "op\tこんにちは\u2502ご用件は?\u2581\nc_1\tはい\n".encode(),
             "pairs.txt": b"16+75  _91  \n"}
    cases = [("parallel-gz", {"train": "train.{lang}.gz"}, ["a cat", "eine"]),
             ("dailydialog-zip", {"train": "train.zip"}, ["Hi .", "Hello !", "Bye"]),
             ("asdc", {"train": "dialog_text/*.tsv"}, ["こんにちは ご用件は?", "はい"]),
             ("underscore-pairs", {"train": "pairs.txt"}, ["16+75", "91"])]
    for fmt, splits, expected in cases:
        src = _fake_corpus(tmp_path, monkeypatch, files, format=fmt, splits=splits,
                           languages=["en", "de"] if "{lang}" in splits["train"] else [])
        corpora.import_corpus("toy", src)
        assert corpora.corpus_lines("toy", "train") == expected, fmt


def test_split_paths_checks_split_and_language(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"train.en": b"a\n", "train.ja": b"b\n"}
    src = _fake_corpus(tmp_path, monkeypatch, files, splits={"train": "train.{lang}"},
                       languages=["en", "ja"], format="parallel")
    corpora.import_corpus("toy", src)
    assert corpora.split_paths("toy", "train", "ja") == [corpora.store_dir("toy") / "train.ja"]
    with pytest.raises(CorpusError, match="needs a language"):
        corpora.split_paths("toy", "train", "fr")
    with pytest.raises(CorpusError, match="no split 'trian'") as err:
        corpora.split_paths("toy", "trian", "en")
    assert "did you mean 'train'" in err.value.hint


# --------------------------------------------------------------------------- CLI
def test_cli_list_json_and_info() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["corpus", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {r["name"] for r in rows} >= {"ptb", "asdc_ja"}
    assert all(r["present"] is False for r in rows)
    asdc = next(r for r in rows if r["name"] == "asdc_ja")
    assert asdc["files"] == 421 and asdc["license"] == "CC BY 4.0"
    res = runner.invoke(cli, ["corpus", "info", "wikitext-2"])
    assert res.exit_code == 0 and "Merity" in res.output and "not imported" in res.output
    res = runner.invoke(cli, ["corpus", "list"])
    assert res.exit_code == 0 and "small_parallel_enja" in res.output


def _seqtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seqtool", *args], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=120)


def test_cli_checksum_mismatch_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "addition.txt").write_text("1+1 _2\n")
    proc = _seqtool("corpus", "import", "addition", "--from", str(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: checksum mismatch for ")
    assert "addition.txt" in proc.stderr.splitlines()[0]
    assert proc.stderr.splitlines()[1].startswith("hint:")


def test_cli_unknown_corpus_exits_2_and_lists_known(tmp_path: Path) -> None:
    proc = _seqtool("corpus", "import", "wikitext", "--from", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown corpus 'wikitext'" in proc.stderr
    assert "did you mean 'wikitext-2'" in proc.stderr and "dailydialog" in proc.stderr


# --------------------------------------------------------------------------- real corpora
@pytest.mark.corpus
@pytest.mark.parametrize("name", ["wikitext-2", "ptb", "multi30k", "small_parallel_enja",
                                  "dailydialog", "asdc_ja", "date", "addition"])
def test_real_corpus_imports_with_verified_checksums(corpora_dir: Path, name: str) -> None:
    if not (corpora_dir / name).is_dir():
        pytest.skip(f"{corpora_dir / name} is not there")
    dest = corpora.import_corpus(name, corpora_dir / name)
    info = corpora.get_info(name)
    for fname, meta in info.files.items():
        assert (dest / fname).stat().st_size == meta["bytes"]
    assert corpora.is_present(name)
    split = "train" if "train" in info.splits else "all"
    assert len(corpora.corpus_lines(name, split)) > 1000
