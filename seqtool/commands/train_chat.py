"""`seqtool train chat`: dialogue windows, a tokenizer, and a seq2seq, HRED or VHRED model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.config import RunConfig
from seqtool.runs import DataWithMetrics


class ChatData(DataWithMetrics):
    """DialogueData for the Trainer, plus the validation KL per reply of a model with a
    latent variable (VHRED; the `extra_metrics` hook; encoders only, no decoding)."""

    def extra_metrics(self, model: Any, device: Any) -> dict[str, float]:
        from seqtool.runtime import to_device

        if not model.has_latent:
            return {}
        total, replies = 0.0, 0
        for batch in self.data.valid_batches():
            kl = model.kl_per_reply(to_device(batch, device))
            total += float(kl.sum())
            replies += kl.numel()
        return {"kl": total / max(replies, 1), "kl_beta": model.kl_beta()}


def card_lines(cfg: RunConfig) -> list[str]:
    """The model card's data lines, with the corpus's license, and the tokenizer line."""
    from seqtool.data.corpora import get_info

    d, tc = cfg.data, cfg.tokenizer
    lines = []
    if d.corpus:
        info = get_info(d.corpus)
        terms = " (non-commercial, share-alike)" if "BY-NC-SA" in info.license else ""
        lines += [f"- data: {d.corpus} ({info.description.split(':')[0]})",
                  f"- data license: {info.license_short or info.license}{terms}; the model "
                  "is trained on this data, so keep to its terms when you use or share it"]
    else:
        lines.append(f"- data: {d.train_file}")
    return lines + [f"- tokenizer: {tc.kind}" + (", lower-cased" if tc.lowercase else "")]


def train_chat(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
               reporter: Any = None, device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a dialogue model: seq2seq, HRED or VHRED
    (model.arch) on the same (context, reply) windows; validation perplexity (VHRED:
    the bound) picks the best checkpoint, and a VHRED run logs the KL per reply."""
    from seqtool.checkpoint import load_checkpoint
    from seqtool.data.dialogue import DialogueData, chat_dialogues, encode_windows
    from seqtool.data.tokenizer import load_tokenizer, train_tokenizer
    from seqtool.models import build_model
    from seqtool.runs import run_training, start_run

    run_dir = start_run(cfg, out, resume, threads, device)
    train_d, valid_d = chat_dialogues(cfg.data, "train"), chat_dialogues(cfg.data, "valid")
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
                           {"tokenizer": tokenizer}, stats, card_lines(cfg))
    summary.update(vocab_size=tokenizer.vocab_size, arch=m.arch, **stats)
    return summary
