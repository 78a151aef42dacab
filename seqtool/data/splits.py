"""Which text file holds a split: an explicit --train-file/--valid-file, an imported
corpus's split (data/corpora.py) or a Hugging Face dataset's (data/hub.py)."""

from __future__ import annotations

from pathlib import Path

from seqtool.config import DataConfig
from seqtool.errors import ConfigError, DataError


def named_split_path(corpus: str | None, hf_dataset: str | None, split: str,
                     column: str = "text") -> Path | None:
    """The text file of `split` of a Hugging Face dataset or an imported corpus (None
    when neither is named)."""
    if hf_dataset:
        from seqtool.data.hub import hub_split_file

        return hub_split_file(hf_dataset, split, column)
    if corpus:
        from seqtool.data.corpora import split_files

        files = split_files(corpus)
        if split not in files:
            raise DataError(f"corpus {corpus!r} has no {split} split",
                            "splits: " + ", ".join(files))
        return files[split]
    return None


def text_split_path(data: DataConfig, split: str) -> Path:
    """The text file of `split`: an explicit --train-file/--valid-file, the hub
    dataset's or the corpus's."""
    explicit = {"train": data.train_file, "valid": data.valid_file,
                "test": data.test_file}[split]
    if explicit:
        return Path(explicit)
    named = named_split_path(data.corpus, data.hf_dataset, split, data.hf_text_column)
    if named is not None:
        return named
    raise ConfigError(f"no {split} data", "give --corpus NAME, --hf-dataset NAME or "
                      "--train-file and --valid-file")
