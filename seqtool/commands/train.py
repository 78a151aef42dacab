"""`seqtool train lm`: build data, tokenizer and model from a RunConfig and train."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from seqtool.config import RunConfig, build_config
from seqtool.errors import ConfigError, DataError, TrainingError


def lm_split_path(cfg: RunConfig, split: str) -> Path:
    """The text file of `split`: an explicit --train-file/--valid-file or the corpus's."""
    from seqtool.data.corpora import split_files

    explicit = {"train": cfg.data.train_file, "valid": cfg.data.valid_file,
                "test": cfg.data.test_file}[split]
    if explicit:
        return Path(explicit)
    if cfg.data.corpus:
        files = split_files(cfg.data.corpus)
        if split not in files:
            raise DataError(f"corpus {cfg.data.corpus!r} has no {split} split",
                            "splits: " + ", ".join(files))
        return files[split]
    raise ConfigError(f"no {split} data", "give --corpus NAME or --train-file and --valid-file")


def default_run_dir(cfg: RunConfig) -> Path:
    name = cfg.data.corpus or Path(cfg.data.train_file).stem or "data"
    return Path("runs") / f"{cfg.task}-{name}-{datetime.now():%Y%m%d-%H%M%S}"


def model_card(cfg: RunConfig, params: int, metrics: dict[str, Any] | None = None) -> str:
    cmd = " ".join(shlex.quote(a) for a in ["seqtool", *sys.argv[1:]])
    lines = [f"# seqtool {cfg.task} model", "",
             f"- model: {cfg.model.cell} x{cfg.model.layers}, hidden {cfg.model.hidden}, "
             f"embedding {cfg.model.emb_dim}, softmax {cfg.model.softmax}, "
             f"tied {cfg.model.tie_weights}; {params:,} parameters",
             f"- data: {cfg.data.corpus or cfg.data.train_file}",
             f"- tokenizer: {cfg.tokenizer.kind}", "", "## Recipe", "", "```",
             cmd, "```", "", "## Metrics", ""]
    for k, v in (metrics or {}).items():
        lines.append(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def check_same_architecture(old: RunConfig, new: RunConfig) -> None:
    if old.model != new.model or old.tokenizer != new.tokenizer:
        diffs = [k for k in old.model.__dataclass_fields__
                 if getattr(old.model, k) != getattr(new.model, k)]
        raise TrainingError(f"--resume into a run with a different architecture "
                            f"(differs: {', '.join(diffs) or 'tokenizer'})",
                            "drop the model overrides, or start a new run with --out")


def resume_config(run_dir: Path, overrides: tuple[str, ...] = ()) -> RunConfig:
    """The run's own config with `--set` overrides; the architecture may not change."""
    from seqtool.checkpoint import read_meta
    from seqtool.config import parse_override

    last = Path(run_dir) / "last"
    if not (last / "config.json").exists():
        raise TrainingError(f"no resumable checkpoint in {run_dir}/last",
                            "give the run folder that train wrote (--out)")
    meta = read_meta(last)
    raw = {k: meta[k] for k in ("task", "data", "tokenizer", "model", "train")}
    old = build_config(raw)
    for text in overrides:
        table, name, value = parse_override(text)
        raw.setdefault(table, {})[name] = value
    cfg = build_config(raw)
    check_same_architecture(old, cfg)
    return cfg


def train_lm(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
             reporter: Any = None, device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a language model; cfg from resume_config then."""
    import torch

    from seqtool.checkpoint import (load_checkpoint, load_training_state, read_meta,
                                    save_checkpoint)
    from seqtool.data.cache import cached_token_stream
    from seqtool.data.lm import LMData
    from seqtool.data.text import read_lines
    from seqtool.data.tokenizer import load_tokenizer, train_tokenizer
    from seqtool.models import build_model
    from seqtool.models.lm import count_parameters
    from seqtool.training import Trainer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    if resume is not None:
        run_dir = Path(resume)
        old_lr = float(read_meta(run_dir / "last")["train"]["lr"])
        loaded = load_checkpoint(run_dir / "last", expect_kind="lm", device=device)
        tokenizer, model = loaded.tokenizer, loaded.model
    else:
        run_dir = Path(out) if out else default_run_dir(cfg)
        if (run_dir / "last").exists():
            raise TrainingError(f"{run_dir} already holds a run",
                                f"resume it with --resume {run_dir}, or choose another --out")
        tokenizer = None
        model = None
    train_path, valid_path = lm_split_path(cfg, "train"), lm_split_path(cfg, "valid")
    if tokenizer is None:
        tc = cfg.tokenizer
        if tc.path:
            tokenizer = load_tokenizer(Path(tc.path))
        else:
            tokenizer = train_tokenizer(read_lines(train_path, "train file"), tc.kind,
                                        tc.vocab_size, tc.min_freq, tc.max_vocab, tc.lowercase)
        model = build_model("lm", cfg.model, tokenizer.vocab_size)
    data = LMData(cached_token_stream(train_path, tokenizer),
                  cached_token_stream(valid_path, tokenizer), cfg.train.batch_size,
                  cfg.train.bptt)
    run_dir.mkdir(parents=True, exist_ok=True)
    params = sum(count_parameters(model).values())

    def save(name: str, training: dict[str, Any] | None) -> None:
        metrics = {}
        if trainer.state.history:
            metrics = {k: v for k, v in trainer.state.history[-1].items()
                       if k.startswith("valid_") or k in ("step", "epoch")}
        save_checkpoint(run_dir / name, model=model, config=cfg, tokenizer=tokenizer,
                        card=model_card(cfg, params, metrics), training=training,
                        extra_meta={"metrics": metrics})

    trainer = Trainer(model, data, cfg.train, run_dir, save, reporter, device)
    if resume is not None:
        trainer.restore(load_training_state(run_dir / "last"))
        if cfg.train.lr != old_lr:  # --set train.lr=... on resume
            trainer.state.lr = cfg.train.lr
    summary = trainer.run()
    summary["parameters"] = params
    summary["vocab_size"] = tokenizer.vocab_size
    return summary
