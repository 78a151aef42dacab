"""`seqtool train translate`: parallel data, one or two tokenizers, the attention
encoder-decoder, and validation BLEU for picking the best checkpoint."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from seqtool.config import RunConfig
from seqtool.runs import DataWithMetrics


def translation_tokenizers(cfg: RunConfig, files: Any) -> tuple[Any, Any]:
    """(source, target) tokenizers: loaded from tokenizer.path (its tgt/ holds a separate
    target tokenizer, else both sides share it), one joint tokenizer trained on both
    sides for model.shared_vocab, or one trained per side; trained on the streamed
    training files (data/store.py: sentencepiece on at most tokenizer.sample_size lines)."""
    from seqtool.checkpoint import TGT_DIR
    from seqtool.data.store import train_pair_tokenizers
    from seqtool.data.tokenizer import TOKENIZER_FILE, load_tokenizer

    tc = cfg.tokenizer
    if tc.path:
        src = load_tokenizer(Path(tc.path))
        tgt_dir = Path(tc.path) / TGT_DIR
        return src, load_tokenizer(tgt_dir) if (tgt_dir / TOKENIZER_FILE).is_file() else src
    return train_pair_tokenizers(tc, cfg.model.shared_vocab, files, cfg.train.seed,
                                 cfg.data.workers)


class TranslationData(DataWithMetrics):
    """ParallelData for the Trainer, plus the BLEU of greedy decoding of the validation
    set (the Trainer's `extra_metrics` hook): the best checkpoint is the one with the
    highest validation BLEU, and early stopping and the plateau schedule follow it."""

    metric = "valid_bleu"
    higher_is_better = True

    def __init__(self, data: Any, references: list[str], tgt_tok: Any, search: Any,
                 tokenize: str, train_precision: str = "fp32") -> None:
        super().__init__(data)
        self.references = references
        self.tgt_tok = tgt_tok
        self.search = dataclasses.replace(search, beam_size=1, n_best=1)  # greedy
        self.tokenize = tokenize
        self.precision = train_precision

    def extra_metrics(self, model: Any, device: Any) -> dict[str, float]:
        from seqtool.metrics import bleu
        from seqtool.runtime import decode_precision
        from seqtool.translation import translate_ids

        sources = [s for s, _ in self.data.valid]
        batch = self.data.eval_batch_size or self.data.batch_size
        hyps = translate_ids(model, sources, self.search, str(device), batch,
                             precision=decode_precision(self.search, self.precision))
        texts = [self.tgt_tok.decode(h[0].tokens) for h in hyps]
        return {"bleu": bleu(texts, self.references, self.tokenize,
                             self.tgt_tok.lowercase)["score"]}


def card_lines(cfg: RunConfig) -> list[str]:
    """The model card's data and tokenizer lines."""
    d, tc = cfg.data, cfg.tokenizer
    data = (f"{d.corpus} {d.src_lang} -> {d.tgt_lang}" if d.corpus and not d.train_src
            else f"{d.train_src} -> {d.train_tgt}")
    vocab = ("one joint vocabulary" if getattr(cfg.model, "shared_vocab", False)
             else "source and target vocabularies")
    return [f"- data: {data}", f"- tokenizer: {tc.kind}, {vocab}"
            + (", lower-cased" if tc.lowercase else "")]


def train_translate(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
                    reporter: Any = None, device: str = "cpu", threads: int = 0
                    ) -> dict[str, Any]:
    """Train (or, with `resume`, continue) an attention encoder-decoder; validation BLEU
    (greedy) each evaluation picks the best checkpoint. Pairs with an empty side are
    skipped and counted in the summary."""
    from seqtool.checkpoint import load_checkpoint
    from seqtool.data.parallel import encode_with_references, translation_split
    from seqtool.data.store import token_store, train_files
    from seqtool.data.store_batches import StoreParallelData
    from seqtool.metrics import bleu_tokenize_for
    from seqtool.models import build_model
    from seqtool.runs import init_embeddings_from, run_training, start_run

    run_dir = start_run(cfg, out, resume, threads, device)
    files = train_files(cfg.data)
    valid_src, valid_tgt, skipped_valid = translation_split(cfg.data, "valid")
    init, tok_seconds = None, 0.0
    if resume is not None:
        loaded = load_checkpoint(run_dir / "last", expect_kind="translate", device=device)
        src_tok, tgt_tok, model = loaded.tokenizer, loaded.tgt_tokenizer, loaded.model
    else:
        tok_start = time.perf_counter()
        src_tok, tgt_tok = translation_tokenizers(cfg, files)
        tok_seconds = time.perf_counter() - tok_start
        model = build_model("translate", cfg.model, (src_tok.vocab_size, tgt_tok.vocab_size))
        init = init_embeddings_from(cfg, model, src_tok, tgt_tok)
    store = token_store(files, src_tok, tgt_tok, workers=cfg.data.workers)
    meta = store.meta
    valid_pairs, refs, dropped_valid = encode_with_references(valid_src, valid_tgt, src_tok,
                                                              tgt_tok)
    stats = {"train_pairs": meta["pairs"], "valid_pairs": len(valid_pairs),
             "skipped_empty": {"train": meta["skipped_empty"] + meta["dropped_unencodable"],
                               "valid": skipped_valid + dropped_valid},
             "max_src_len": meta["max_src_len"], "max_tgt_len": meta["max_tgt_len"]}
    tokenize = bleu_tokenize_for(None, cfg.data.bleu_tokenize, cfg.data.tgt_lang)
    data = TranslationData(StoreParallelData(store, valid_pairs, cfg.train.batch_size,
                                             seed=cfg.train.seed), refs, tgt_tok, cfg.search,
                           tokenize, cfg.train.precision)
    summary = run_training(cfg, model, data, run_dir, resume, reporter, device,
                           {"tokenizer": src_tok, "tgt_tokenizer": tgt_tok}, stats,
                           card_lines(cfg))
    summary.update(vocab_size=[src_tok.vocab_size, tgt_tok.vocab_size],
                   bleu_tokenize=tokenize, **stats)
    summary["token_store"] = {"path": str(store.path), "built": store.built,
                              "seconds": round(store.seconds, 2), "workers": meta["workers"],
                              "tokenizer_seconds": round(tok_seconds, 2)}
    if init:
        summary["init_embeddings"] = init
    return summary
