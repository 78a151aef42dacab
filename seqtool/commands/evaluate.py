"""`seqtool evaluate lm`: perplexity on a corpus split or a file (per token, and per
word for subword tokenizers). `seqtool evaluate translate`: BLEU and chrF with the
sacrebleu signature, and translation speed. `seqtool evaluate chat`: perplexity
(VHRED: its bound), KL, BLEU-1/2, distinct-1/2 and reply length of a dialogue model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seqtool.errors import ConfigError, DataError


def _device(loaded: Any) -> Any:
    return next(loaded.model.parameters()).device


def lm_text(corpus: str | None, split: str, file: Path | None, hf_dataset: str | None
            ) -> Path:
    """The text file `evaluate lm` reads: exactly one of a corpus split, a file or a
    hub dataset's split (checked before a model is loaded)."""
    from seqtool.data.splits import named_split_path

    if (bool(corpus) + bool(file) + bool(hf_dataset)) != 1:
        raise ConfigError("give exactly one of --corpus NAME, --file PATH or --hf-dataset NAME",
                          "e.g. seqtool evaluate lm --corpus wikitext-2 --split test")
    path = Path(file) if file else named_split_path(corpus, hf_dataset, split)
    assert path is not None  # one of the three is given
    return path


def evaluate_lm(loaded: Any, *, corpus: str | None = None, split: str = "test",
                file: Path | None = None, batch_size: int = 10, bptt: int = 35,
                hf_dataset: str | None = None) -> dict[str, Any]:
    """exp(mean NLL per token) with <eos> after every line, as in the PTB/WikiText
    benchmarks; state carried across windows of `bptt` tokens in `batch_size` streams."""
    from seqtool.data.cache import cached_token_stream
    from seqtool.data.lm import LMData, batchify
    from seqtool.data.text import read_lines
    from seqtool.metrics import evaluate_loss

    path = lm_text(corpus, split, file, hf_dataset)
    stream = cached_token_stream(path, loaded.tokenizer)
    data = batchify(stream, min(batch_size, max(1, stream.numel() // 2)))
    metrics = evaluate_loss(loaded.model, LMData.windows(data, bptt), _device(loaded))
    result = {"perplexity": metrics["ppl"], "loss": metrics["loss"], "tokens": metrics["tokens"],
              "corpus": corpus or hf_dataset or str(path),
              "split": split if corpus or hf_dataset else "file",
              "model": str(loaded.folder), "tokenizer": loaded.tokenizer.kind}
    if loaded.tokenizer.kind != "word":
        # subword models: also per word, total NLL / (whitespace words + one <eos> per line),
        # so the figure compares with word-level models
        lines = read_lines(path, "evaluation file")
        # the streams drop a few tail tokens
        words = sum(len(line.split()) + 1 for line in lines) * metrics["tokens"] / stream.numel()
        result["word_perplexity"] = math.exp(min(metrics["loss"] * metrics["tokens"] / words, 50))
    return result


def evaluate_translate(loaded: Any, *, corpus: str | None = None, split: str = "test",
                       src: str | None = None, tgt: str | None = None,
                       src_file: Path | None = None, ref_file: Path | None = None,
                       search: dict[str, Any] | None = None, batch_size: int = 64,
                       bleu_tokenize: str | None = None) -> dict[str, Any]:
    """BLEU and chrF (sacrebleu, with signatures) of the model's translations of a
    parallel corpus split or of --src-file against --ref-file, and sentences/s.
    `search`: SearchConfig keys over the model's [search] defaults."""
    import time

    from seqtool.data.parallel import corpus_pairs
    from seqtool.data.text import read_lines
    from seqtool.metrics import bleu_tokenize_for, score_lines
    from seqtool.translation import search_settings, translate_lines

    if (src_file is None) != (ref_file is None):
        raise ConfigError("give both --src-file and --ref-file",
                          "the reference has the translation of each source line")
    if corpus and src_file:
        raise ConfigError("give either --corpus or --src-file/--ref-file, not both",
                          "e.g. seqtool evaluate translate --model RUN --corpus multi30k")
    device = str(_device(loaded))
    data = loaded.config.data
    src, tgt = src or data.src_lang, tgt or data.tgt_lang
    skipped = 0
    if src_file is not None:
        assert ref_file is not None
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
    settings = search_settings(loaded.config.search, **(search or {}))
    t0 = time.perf_counter()
    hyps = [t.texts[0] for t in translate_lines(loaded, sources, settings, device, batch_size)]
    seconds = time.perf_counter() - t0
    scores = score_lines(hyps, refs, bleu_tokenize_for(bleu_tokenize, data.bleu_tokenize, tgt),
                         loaded.tgt_tokenizer.lowercase)
    return {**scores, **where, "src": src, "tgt": tgt, "skipped_empty": skipped,
            "beam": settings.beam_size, "alpha": settings.alpha, "seconds": seconds,
            "sentences_per_s": len(hyps) / max(seconds, 1e-9), "model": str(loaded.folder)}


def evaluate_chat(loaded: Any, *, corpus: str | None = None, split: str = "test",
                  file: Path | None = None, batch_size: int = 64, max_len: int | None = None,
                  greedy: bool = True, temperature: float = 1.0, top_p: float = 1.0,
                  limit: int = 0, seed: int = 0) -> dict[str, Any]:
    """A dialogue model on every reply of a corpus split or an `__eou__` file:
    per-word perplexity (VHRED: the bound), KL per reply (VHRED), BLEU-1/2 of the
    generated replies against the reference (sacrebleu), distinct-1/2 over the whole
    output and the average reply length (in model tokens)."""
    import torch

    from seqtool.data.dialogue import (DIALOGUE_LANGS, batches_in_order, corpus_dialogues,
                                       encode_windows, file_dialogues, indexed_batches,
                                       windows)
    from seqtool.data.tokenizer import BOS, EOS, PAD, UNK
    from seqtool.decoding import decode
    from seqtool.metrics import bleu, bleu_tokenize_for, distinct_n
    from seqtool.runtime import to_device
    from seqtool.metrics import evaluate_loss

    model, tok, m = loaded.model, loaded.tokenizer, loaded.config.model
    device = _device(loaded)
    if corpus and file:
        raise ConfigError("give either --corpus or --file, not both",
                          "e.g. seqtool evaluate chat --model RUN --corpus dailydialog")
    corpus = None if file else corpus or loaded.config.data.corpus
    if file is not None:
        dialogues = file_dialogues(file, "dialogue file")
    elif corpus:
        dialogues = corpus_dialogues(corpus, split)
    else:
        raise ConfigError("no evaluation data", "give --corpus NAME (with --split) or --file")
    examples = encode_windows(dialogues, tok, model.context_turns, m.max_utt_len)
    pairs = list(windows(dialogues, model.context_turns))  # (context, reply) texts
    references = [reply for _, reply in pairs]
    if limit:
        examples, references = examples[:limit], references[:limit]
    if not examples:
        raise DataError("no replies to evaluate", "each dialogue needs two utterances or more")
    torch.manual_seed(seed)  # VHRED: the z drawn for each reply
    gen = torch.Generator().manual_seed(seed)
    losses = evaluate_loss(model, batches_in_order(examples, batch_size), device)
    outputs: list[list[int]] = [[] for _ in examples]
    for idx, batch in indexed_batches(examples, batch_size):
        batch = to_device({k: v for k, v in batch.items() if k != "tgt"}, device)
        out = decode(model, batch, max_len or m.max_utt_len, eos=EOS, sample=not greedy,
                     temperature=temperature, top_p=top_p, banned=(PAD, BOS, UNK),
                     generator=gen)
        for i, ids in zip(idx, out.tokens, strict=False):
            outputs[i] = ids
    texts = [" ".join(tok.decode(ids).split()) for ids in outputs]
    tokenize = bleu_tokenize_for(None, loaded.config.data.bleu_tokenize,
                                 DIALOGUE_LANGS.get(corpus or ""))
    b1, b2 = (bleu(texts, references, tokenize, tok.lowercase, n) for n in (1, 2))
    vhred = bool(model.has_latent)
    return {"model": str(loaded.folder), "arch": m.arch, "corpus": corpus or str(file),
            "split": split if corpus else "file", "replies": len(examples),
            "perplexity": losses["ppl"], "perplexity_is_bound": vhred,
            "kl_per_reply": losses["kl_total"] / losses["replies"] if vhred else None,
            "bleu1": b1["score"], "bleu2": b2["score"], "bleu_signature": b1["signature"],
            "distinct1": distinct_n(outputs, 1), "distinct2": distinct_n(outputs, 2),
            "avg_len": sum(map(len, outputs)) / len(outputs),
            "decoding": ("greedy" if greedy else f"by sampling (T {temperature}, top-p {top_p})")
            + (", z drawn from the prior" if vhred else ""),
            "samples": [{"context": c, "reference": r, "reply": t} for (c, r), t
                        in zip(pairs[:3], texts, strict=False)]}
