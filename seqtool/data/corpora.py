"""The corpus catalog (corpora/*.toml, shipped as seqtool.catalog) and the
local corpus store ($SEQTOOL_HOME/corpora/<name>/, default ~/.seqtool).

`import_corpus` copies files from a local folder and verifies their sha256;
`fetch_corpus` downloads them when online; `split_files` / `split_paths` find
an imported corpus's files; `corpus_lines` reads a split as plain text lines
(for tokenizer training).

Catalog entry keys (one TOML file per corpus; see corpora/wikitext-2.toml):

- name, task (lm | translation | dialogue | toy), description, citation,
  license (as stated by the source) and license_short (for tables).
- format: how the files are read -
  lines             one sentence / paragraph per line (ptb, wikitext-2);
  parallel          line-aligned `<split>.<lang>` text files (small_parallel_enja);
  parallel-gz       the same, gzip-compressed (multi30k);
  dailydialog-zip   `<split>.zip` holding `<split>/dialogues_<split>.txt`, one
                    dialogue per line, utterances ending in ` __eou__`;
  asdc              `dialog_text/NNN.tsv` (speaker TAB text; U+2502 separates
                    sentences, U+2581 marks a line break), `dialog_json/NNN.json`
                    whose meta.purpose gives the authors' train/dev/test split;
  underscore-pairs  one example per line, source and target split at the first
                    `_` (date, addition; no official splits).
- languages: the language codes of a parallel corpus.
- [splits]: split name -> file name. `{lang}` stands for a language code
  (multi30k: train = "train.{lang}.gz"), and a pattern with `*` names several
  files (asdc_ja: all = "dialog_text/*.tsv").
- homepage, hf_dataset / hf_config (the Hugging Face dataset, where one exists),
  download_base (URL prefix for `seqtool corpus fetch`).
- [files."<path>"]: sha256 and bytes of every file, paths relative to the
  corpus folder (subfolders allowed); an optional `remote` gives the file's
  path under download_base when it differs from <path>.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from seqtool.errors import CorpusError, did_you_mean

TASKS = ("lm", "translation", "dialogue", "toy")
# on_progress(file name, bytes done so far, bytes in all)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    task: str
    description: str
    license: str
    citation: str
    license_short: str = ""
    format: str = "lines"
    languages: list[str] = field(default_factory=list)
    homepage: str = ""
    hf_dataset: str = ""
    hf_config: str = ""
    download_base: str = ""
    splits: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(int(meta["bytes"]) for meta in self.files.values())

    def url(self, fname: str) -> str:
        return self.download_base + str(self.files[fname].get("remote", fname))


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


def info_of_kind(name: str, formats: tuple[str, ...], kind: str, listing: str, hint: str
                 ) -> CorpusInfo:
    """The catalog entry of NAME, which must be stored in one of `formats`; else a
    CorpusError that lists the corpora of that kind and gives `hint`."""
    info = get_info(name)
    if info.format not in formats:
        known = [n for n, i in catalog().items() if i.format in formats]
        raise CorpusError(f"{name} is not a {kind} corpus (format {info.format})",
                          f"{listing}: {', '.join(known)}; {hint}")
    return info


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


def _short_list(names: list[str], n: int = 5) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _copy_verified(src: Path, dest: Path, sha256: str, on_chunk: Callable[[int], None]) -> None:
    """Copy src to dest, hashing on the way; CorpusError when the sha256 differs."""
    h = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            h.update(chunk)
            fout.write(chunk)
            on_chunk(len(chunk))
    got = h.hexdigest()
    if got != sha256:
        raise CorpusError(f"checksum mismatch for {src}: sha256 {got[:12]}..., "
                          f"expected {sha256[:12]}...",
                          "the file differs from the catalogued one; re-download it")


def import_corpus(name: str, source: str | Path, on_progress: Progress | None = None) -> Path:
    """Copy a corpus's files from `source` into the store, verifying each sha256.

    The copy goes to a temporary folder that replaces the store entry only when
    every file matched, so a failed import leaves the store as it was.
    """
    info = get_info(name)
    src = Path(source)
    if not src.is_dir():
        raise CorpusError(f"not a folder: {src}", f"give the folder that holds {name}'s files")
    missing = [f for f in info.files if not (src / f).is_file()]
    if missing:
        raise CorpusError(f"{src} lacks {len(missing)} of {name}'s {len(info.files)} files: "
                          f"{_short_list(missing)}",
                          f"{name} needs: {_short_list(list(info.files))}")
    dest = store_dir(name)
    tmp = dest.with_name(f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    done, total = 0, info.total_bytes
    try:
        for fname, meta in info.files.items():
            def advance(n: int, fname: str = fname) -> None:
                nonlocal done
                done += n
                if on_progress:
                    on_progress(fname, done, total)
            _copy_verified(src / fname, tmp / fname, meta["sha256"], advance)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def fetch_corpus(name: str, timeout: float = 20.0, on_progress: Progress | None = None) -> Path:
    """Download a corpus's files from its catalogued address, then import them."""
    import tempfile
    import urllib.error
    import urllib.request

    info = get_info(name)
    if not info.download_base:
        raise CorpusError(f"{name} has no download address in the catalog",
                          f"get it from {info.homepage} and run: seqtool corpus import {name} "
                          f"--from DIR")
    done, total = 0, info.total_bytes
    with tempfile.TemporaryDirectory() as tmp:
        for fname in info.files:
            url = info.url(fname)
            target = Path(tmp) / fname
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp, \
                        open(target, "wb") as fh:
                    shutil.copyfileobj(resp, fh)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise CorpusError(f"cannot download {url}: {reason}",
                                  f"offline? download it elsewhere, then: seqtool corpus import "
                                  f"{name} --from DIR") from None
            done += target.stat().st_size
            if on_progress:
                on_progress(fname, done, total)
        return import_corpus(name, tmp)


def _require_present(name: str) -> Path:
    if not is_present(name):
        raise CorpusError(f"corpus {name!r} is not imported",
                          f"run: seqtool corpus import {name} --from DIR  (or seqtool corpus "
                          f"fetch {name} when online)")
    return store_dir(name)


def split_files(name: str) -> dict[str, Path]:
    """split name -> file path of an imported corpus (single-file splits only)."""
    info = get_info(name)
    d = _require_present(name)
    return {split: d / f for split, f in info.splits.items()
            if isinstance(f, str) and "{" not in f and "*" not in f}


def split_paths(name: str, split: str, lang: str | None = None) -> list[Path]:
    """The files of one split of an imported corpus (several for a `*` pattern)."""
    info = get_info(name)
    if split not in info.splits:
        raise CorpusError(f"{name} has no split {split!r}",
                          (did_you_mean(split, info.splits) or "") + " splits: "
                          + ", ".join(info.splits))
    pattern = str(info.splits[split])
    if "{lang}" in pattern:
        if lang not in info.languages:
            raise CorpusError(f"{name} needs a language for split {split!r}, got {lang!r}",
                              "languages: " + ", ".join(info.languages))
        pattern = pattern.replace("{lang}", lang)
    d = _require_present(name)
    return sorted(d.glob(pattern)) if "*" in pattern else [d / pattern]


def corpus_lines(name: str, split: str = "train", lang: str | None = None) -> list[str]:
    """A split as plain text lines, whatever the format (for tokenizer training).

    Parallel corpora give one language (or all of them when `lang` is None);
    dialogues give one utterance per line; underscore pairs give both sides.
    """
    info = get_info(name)
    langs = [lang] if lang or not info.languages else info.languages
    lines: list[str] = []
    for code in langs:
        for path in split_paths(name, split, code):
            lines.extend(_read_lines(info.format, path))
    return lines


def _read_lines(fmt: str, path: Path) -> list[str]:
    if fmt == "parallel-gz":
        import gzip

        return gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
    if fmt == "dailydialog-zip":
        import zipfile

        split = path.stem
        with zipfile.ZipFile(path) as zf:
            text = zf.read(f"{split}/dialogues_{split}.txt").decode("utf-8")
        return [u.strip() for line in text.splitlines() for u in line.split("__eou__")
                if u.strip()]
    if fmt == "asdc":
        rows = path.read_text("utf-8").splitlines()
        return [" ".join(row.split("\t", 1)[-1].replace("\u2502", " ").replace("\u2581", " ")
                         .split()) for row in rows if row.strip()]
    if fmt == "underscore-pairs":
        return [side.strip() for line in path.read_text("utf-8").splitlines()
                for side in line.split("_", 1)]
    from seqtool.data.text import read_lines

    return read_lines(path)

