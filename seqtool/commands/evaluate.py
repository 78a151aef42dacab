"""`seqtool evaluate lm`: perplexity on a corpus split or a file (per token, and per
word for subword tokenizers). `seqtool evaluate translate`: BLEU and chrF with the
sacrebleu signature, and translation speed."""

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



def evaluate_translate(model_path: Path | None, corpus: str | None, split: str,
                       src: str | None, tgt: str | None, src_file: Path | None,
                       ref_file: Path | None, search_flags: dict[str, Any] | None = None,
                       batch_size: int = 64, device: str = "cpu",
                       bleu_tokenize: str | None = None) -> dict[str, Any]:
    """BLEU and chrF (sacrebleu, with signatures) of the model's translations of a
    parallel corpus split or of --src-file against --ref-file, and sentences/s."""
    import time

    from seqtool.commands.translate import (bleu_tokenize_for, corpus_pairs, load_translator,
                                            score_lines, search_settings, translate_lines)
    from seqtool.data.text import read_lines

    if (src_file is None) != (ref_file is None):
        raise ConfigError("give both --src-file and --ref-file",
                          "the reference has the translation of each source line")
    if corpus and src_file:
        raise ConfigError("give either --corpus or --src-file/--ref-file, not both",
                          "e.g. seqtool evaluate translate --model RUN --corpus multi30k")
    loaded = load_translator(model_path, src, tgt, device)
    data = loaded.config.data
    src, tgt = src or data.src_lang, tgt or data.tgt_lang
    skipped = 0
    if src_file is not None:
        sources = read_lines(src_file, "source file")
        refs = read_lines(ref_file, "reference file")
        if len(sources) != len(refs):
            raise DataError(f"{src_file} has {len(sources)} lines, {ref_file} has {len(refs)}",
                            "the reference needs one line per source line")
        where = {"corpus": str(src_file), "split": "file", "reference": str(ref_file)}
    else:
        corpus = corpus or data.corpus
        if not corpus:
            raise ConfigError("no evaluation data", "give --corpus NAME (with --split), or "
                              "--src-file and --ref-file")
        sources, refs, skipped = corpus_pairs(corpus, split, src, tgt)
        where = {"corpus": corpus, "split": split}
    search = search_settings(loaded.config.search, **(search_flags or {}))
    t0 = time.perf_counter()
    hyps = [t.texts[0] for t in translate_lines(loaded, sources, search, device, batch_size)]
    seconds = time.perf_counter() - t0
    scores = score_lines(hyps, refs, bleu_tokenize_for(loaded, tgt, bleu_tokenize),
                         loaded.tgt_tokenizer.lowercase)
    return {**scores, **where, "src": src, "tgt": tgt, "skipped_empty": skipped,
            "beam": search.beam_size, "alpha": search.alpha, "seconds": seconds,
            "sentences_per_s": len(hyps) / max(seconds, 1e-9), "model": str(loaded.folder)}
