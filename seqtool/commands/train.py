"""`seqtool train lm`: a tokenizer, the token streams and a language model, trained
by the shared run machinery (runs.py). Translation and chat live in
train_translate.py and train_chat.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.config import RunConfig


def train_lm(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
             reporter: Any = None, device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a language model; cfg from resume_config then."""
    from seqtool.checkpoint import load_checkpoint
    from seqtool.data.cache import cached_token_stream
    from seqtool.data.lmstore import MemmapLMData, stream_store, train_text_tokenizer
    from seqtool.data.splits import text_split_path
    from seqtool.data.tokenizer import load_tokenizer
    from seqtool.models import build_model
    from seqtool.runs import init_embeddings_from, run_training, start_run

    run_dir = start_run(cfg, out, resume, threads, device)
    train_path, valid_path = text_split_path(cfg.data, "train"), text_split_path(cfg.data, "valid")
    init = None
    if resume is not None:
        loaded = load_checkpoint(run_dir / "last", expect_kind="lm", device=device)
        tokenizer, model = loaded.tokenizer, loaded.model
    else:
        tc = cfg.tokenizer
        if tc.path:
            tokenizer = load_tokenizer(Path(tc.path))
        else:
            tokenizer = train_text_tokenizer(tc, train_path, cfg.train.seed, cfg.data.workers)
        model = build_model("lm", cfg.model, tokenizer.vocab_size)
        init = init_embeddings_from(cfg, model, tokenizer)
    data = MemmapLMData(stream_store(train_path, tokenizer, workers=cfg.data.workers),
                        cached_token_stream(valid_path, tokenizer), cfg.train.batch_size,
                        cfg.train.bptt)
    lines = [f"- data: {cfg.data.corpus or cfg.data.train_file}",
             f"- tokenizer: {cfg.tokenizer.kind}"]
    summary = run_training(cfg, model, data, run_dir, resume, reporter, device,
                           {"tokenizer": tokenizer}, data_lines=lines)
    summary["vocab_size"] = tokenizer.vocab_size
    if init:
        summary["init_embeddings"] = init
    return summary
