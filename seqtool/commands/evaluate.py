"""`seqtool evaluate lm`: perplexity on a corpus split or a file (per token, and per
word for subword tokenizers)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seqtool.errors import ConfigError, DataError


def evaluate_lm(model_path: Path | None, corpus: str | None, split: str, file: Path | None,
                batch_size: int = 10, device: str = "cpu", bptt: int = 35) -> dict[str, Any]:
    """exp(mean NLL per token) with <eos> after every line, as in the PTB/WikiText
    benchmarks; state carried across windows of `bptt` tokens in `batch_size` streams."""
    import torch

    from seqtool.commands.predict import load_lm
    from seqtool.data.corpora import split_files
    from seqtool.data.cache import cached_token_stream
    from seqtool.data.lm import LMData, batchify
    from seqtool.data.text import read_lines
    from seqtool.training import evaluate_loss

    if bool(corpus) == bool(file):
        raise ConfigError("give exactly one of --corpus NAME or --file PATH",
                          "e.g. seqtool evaluate lm --corpus wikitext-2 --split test")
    if corpus:
        files = split_files(corpus)
        if split not in files:
            raise DataError(f"corpus {corpus!r} has no split {split!r}",
                            "splits: " + ", ".join(files))
        path = files[split]
    else:
        path = Path(file)
    loaded = load_lm(model_path, device)
    stream = cached_token_stream(path, loaded.tokenizer)
    data = batchify(stream, min(batch_size, max(1, stream.numel() // 2)))
    metrics = evaluate_loss(loaded.model, LMData.windows(data, bptt), torch.device(device))
    result = {"perplexity": metrics["ppl"], "loss": metrics["loss"], "tokens": metrics["tokens"],
              "corpus": corpus or str(path), "split": split if corpus else "file",
              "model": str(loaded.folder), "tokenizer": loaded.tokenizer.kind}
    if loaded.tokenizer.kind != "word":
        # subword models: also per word, total NLL / (whitespace words + one <eos> per line),
        # so the figure compares with word-level models
        words = sum(len(line.split()) + 1 for line in read_lines(path, "evaluation file"))
        words *= metrics["tokens"] / stream.numel()  # the streams drop a few tail tokens
        result["word_perplexity"] = math.exp(min(metrics["loss"] * metrics["tokens"] / words, 50))
    return result

