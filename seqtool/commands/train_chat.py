"""`seqtool train chat`: dialogue windows, a tokenizer, and a seq2seq, HRED or VHRED model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.commands.train import run_training, start_run
from seqtool.config import RunConfig


def train_chat(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
               reporter: Any = None, device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a dialogue model: seq2seq, HRED or VHRED
    (model.arch) on the same (context, reply) windows; validation perplexity (VHRED:
    the bound) picks the best checkpoint, and a VHRED run logs the KL per reply."""
    from seqtool.checkpoint import load_checkpoint
    from seqtool.commands.chat import ChatData, chat_dialogues
    from seqtool.data.dialogue import DialogueData, encode_windows
    from seqtool.data.tokenizer import load_tokenizer, train_tokenizer
    from seqtool.models import build_model

    run_dir = start_run(cfg, out, resume, threads)
    train_d, valid_d = chat_dialogues(cfg, "train"), chat_dialogues(cfg, "valid")
    if resume is not None:
        loaded = load_checkpoint(run_dir / "last", expect_kind="chat", device=device)
        tokenizer, model = loaded.tokenizer, loaded.model
    else:
        tc = cfg.tokenizer
        tokenizer = (load_tokenizer(Path(tc.path)) if tc.path else train_tokenizer(
            [u for d in train_d for u in d.turns], tc.kind, tc.vocab_size, tc.min_freq,
            tc.max_vocab, tc.lowercase))
        model = build_model("chat", cfg.model, tokenizer.vocab_size)
    m = cfg.model
    train_ex = encode_windows(train_d, tokenizer, model.context_turns, m.max_utt_len)
    valid_ex = encode_windows(valid_d, tokenizer, model.context_turns, m.max_utt_len)
    stats = {"train_dialogues": len(train_d), "valid_dialogues": len(valid_d),
             "train_replies": len(train_ex), "valid_replies": len(valid_ex),
             "context_turns": model.context_turns}
    data = ChatData(DialogueData(train_ex, valid_ex, cfg.train.batch_size, seed=cfg.train.seed))
    summary = run_training(cfg, model, data, run_dir, resume, reporter, device,
                           {"tokenizer": tokenizer}, stats)
    summary.update(vocab_size=tokenizer.vocab_size, arch=m.arch, **stats)
    return summary
