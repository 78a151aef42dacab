"""`seqtool train lm` and what every `train` shares: run folders, model cards,
resume configs, checkpoint saving around the one Trainer. Translation and chat
live in train_translate.py and train_chat.py."""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from seqtool.config import RunConfig
from seqtool.configfile import build_config
from seqtool.errors import ConfigError, DataError, TrainingError


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


def lm_split_path(cfg: RunConfig, split: str) -> Path:
    """The text file of `split`: an explicit --train-file/--valid-file, the hub
    dataset's or the corpus's."""
    explicit = {"train": cfg.data.train_file, "valid": cfg.data.valid_file,
                "test": cfg.data.test_file}[split]
    if explicit:
        return Path(explicit)
    named = named_split_path(cfg.data.corpus, cfg.data.hf_dataset, split,
                             cfg.data.hf_text_column)
    if named is not None:
        return named
    raise ConfigError(f"no {split} data", "give --corpus NAME, --hf-dataset NAME or "
                      "--train-file and --valid-file")


def default_run_dir(cfg: RunConfig) -> Path:
    d = cfg.data
    if cfg.task == "translate":
        langs = f"-{d.src_lang}-{d.tgt_lang}" if d.src_lang and d.tgt_lang else ""
        name = (d.corpus if d.corpus and not d.train_src else Path(d.train_src).stem
                or "data") + langs
    else:
        name = (d.corpus or d.hf_dataset.split(":")[0].split("/")[-1]
                or Path(d.train_file).stem or "data")
    return Path("runs") / f"{cfg.task}-{name}-{datetime.now():%Y%m%d-%H%M%S}"


def _describe_model(cfg: RunConfig, params: int) -> list[str]:
    """The model card's model, data and tokenizer lines (task-aware)."""
    m, d, tc = cfg.model, cfg.data, cfg.tokenizer
    if cfg.task == "translate":
        enc = (f"{'bi-' if m.bidirectional else ''}{m.cell.upper()} {m.enc_layers} x "
               f"{m.enc_hidden}{' per direction' if m.bidirectional else ''}")
        feed = ", input feeding" if m.input_feeding else ""
        data = (f"{d.corpus} {d.src_lang} -> {d.tgt_lang}" if d.corpus and not d.train_src
                else f"{d.train_src} -> {d.train_tgt}")
        vocab = "one joint vocabulary" if m.shared_vocab else "source and target vocabularies"
        return [f"- model: attention encoder-decoder; encoder {enc}, decoder {m.cell.upper()} "
                f"{m.dec_layers} x {m.dec_hidden}, attention {m.attention}{feed}, "
                f"embedding {m.emb_dim}; {params:,} parameters",
                f"- data: {data}", f"- tokenizer: {tc.kind}, {vocab}"
                + (", lower-cased" if tc.lowercase else "")]
    if cfg.task == "chat":
        return _describe_chat(cfg, params)
    return [f"- model: {m.cell} x{m.layers}, hidden {m.hidden}, embedding {m.emb_dim}, "
            f"softmax {m.softmax}, tied {m.tie_weights}; {params:,} parameters",
            f"- data: {d.corpus or d.train_file}", f"- tokenizer: {tc.kind}"]


def _describe_chat(cfg: RunConfig, params: int) -> list[str]:
    """A dialogue model card's model, data (with the corpus's license) and tokenizer lines."""
    from seqtool.data.corpora import get_info

    m, d = cfg.model, cfg.data
    enc = f"{'bi-' if m.bidirectional else ''}{m.cell.upper()} {m.enc_hidden}"
    parts = {"seq2seq": "single-turn seq2seq baseline (reads the previous utterance only)",
             "hred": f"HRED, context RNN {m.ctx_hidden} over {m.context_turns} utterances",
             "vhred": f"VHRED, context RNN {m.ctx_hidden} over {m.context_turns} utterances, "
                      f"latent z {m.latent_dim} (KL annealing {m.kl_anneal}, word dropout "
                      f"{m.word_dropout}, bag-of-words weight {m.bow_weight})"}
    lines = [f"- model: {parts[m.arch]}; utterance encoder {enc}, decoder {m.cell.upper()} "
             f"{m.dec_layers} x {m.dec_hidden}, attention {m.attention}, embedding "
             f"{m.emb_dim}; {params:,} parameters"]
    if d.corpus:
        info = get_info(d.corpus)
        terms = " (non-commercial, share-alike)" if "BY-NC-SA" in info.license else ""
        lines += [f"- data: {d.corpus} ({info.description.split(':')[0]})",
                  f"- data license: {info.license_short or info.license}{terms}; the model "
                  "is trained on this data, so keep to its terms when you use or share it"]
    else:
        lines.append(f"- data: {d.train_file}")
    tc = cfg.tokenizer
    return lines + [f"- tokenizer: {tc.kind}" + (", lower-cased" if tc.lowercase else "")]


def this_command() -> str:
    return " ".join(shlex.quote(a) for a in ["seqtool", *sys.argv[1:]])


def model_card(cfg: RunConfig, params: int, metrics: dict[str, Any] | None = None,
               commands: list[str] | None = None) -> str:
    """The run's card: model, data, the command that started the run (and those that
    resumed it), the last validation metrics."""
    first, *resumed = commands or [this_command()]
    recipe = [first] + [f"# resumed with: {c}" for c in resumed]
    lines = [f"# seqtool {cfg.task} model", "", *_describe_model(cfg, params), "",
             "## Recipe", "", "```", *recipe, "```", "", "## Metrics", ""]
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
    from seqtool.configfile import parse_override

    last = Path(run_dir) / "last"
    if not (last / "config.json").exists():
        raise TrainingError(f"no resumable checkpoint in {run_dir}/last",
                            "give the run folder that train wrote (--out)")
    meta = read_meta(last)
    raw = {k: meta[k] for k in ("task", "data", "tokenizer", "model", "train", "search")
           if k in meta}
    old = build_config(raw)
    for text in overrides:
        table, name, value = parse_override(text)
        raw.setdefault(table, {})[name] = value
    cfg = build_config(raw)
    check_same_architecture(old, cfg)
    return cfg


def init_embeddings_from(cfg: RunConfig, model: Any, tokenizer: Any, tgt_tokenizer: Any = None
                         ) -> dict[str, Any] | None:
    """train.init_embeddings (--init-embeddings FILE): copy word2vec vectors into a new
    model's input embeddings (commands/word2vec.py); how many words were found."""
    if not cfg.train.init_embeddings:
        return None
    from seqtool.commands.word2vec import init_embeddings

    return init_embeddings(model, cfg.train.init_embeddings, tokenizer, tgt_tokenizer)


def start_run(cfg: RunConfig, out: Path | None, resume: Path | None, threads: int) -> Path:
    """Threads, seed, and the run folder: a resumed one, or a new one that must be empty."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cfg.train.seed)
    if resume is not None:
        return Path(resume)
    run_dir = Path(out) if out else default_run_dir(cfg)
    if (run_dir / "last").exists():
        raise TrainingError(f"{run_dir} already holds a run",
                            f"resume it with --resume {run_dir}, or choose another --out")
    return run_dir


def run_training(cfg: RunConfig, model: Any, data: Any, run_dir: Path, resume: Path | None,
                 reporter: Any, device: str, tokenizers: dict[str, Any],
                 stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """The part every task shares: checkpoint saving, the Trainer, exact resume
    (a `--set train.lr=...` on resume takes effect), and the run's summary.
    `tokenizers` holds `tokenizer` (and `tgt_tokenizer` for two vocabularies)."""
    from seqtool.checkpoint import load_training_state, read_meta, save_checkpoint
    from seqtool.models.lm import count_parameters
    from seqtool.training import Trainer

    run_dir.mkdir(parents=True, exist_ok=True)
    params = sum(count_parameters(model).values())
    extra = {"data_stats": stats} if stats else {}
    last_meta = read_meta(run_dir / "last") if resume is not None else {}
    # the card's recipe: the command that started the run, then each resume
    commands = last_meta.get("commands", []) + [this_command()]

    def save(name: str, training: dict[str, Any] | None) -> None:
        metrics = {}
        if trainer.state.history:
            metrics = {k: v for k, v in trainer.state.history[-1].items()
                       if k.startswith("valid_") or k in ("step", "epoch")}
        save_checkpoint(run_dir / name, model=model, config=cfg, **tokenizers,
                        card=model_card(cfg, params, metrics, commands), training=training,
                        extra_meta={"metrics": metrics, "commands": commands, **extra})

    trainer = Trainer(model, data, cfg.train, run_dir, save, reporter, device,
                      resume_command=f"seqtool train {cfg.task}")
    if resume is not None:
        old_lr = float(last_meta["train"]["lr"])
        trainer.restore(load_training_state(run_dir / "last"))
        if cfg.train.lr != old_lr:  # --set train.lr=... on resume
            trainer.state.lr = cfg.train.lr
    summary = trainer.run()
    summary["parameters"] = params
    return summary


def train_lm(cfg: RunConfig, out: Path | None = None, resume: Path | None = None,
             reporter: Any = None, device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Train (or, with `resume`, continue) a language model; cfg from resume_config then."""
    from seqtool.checkpoint import load_checkpoint
    from seqtool.data.cache import cached_token_stream
    from seqtool.data.lm import LMData
    from seqtool.data.text import read_lines
    from seqtool.data.tokenizer import load_tokenizer, train_tokenizer
    from seqtool.models import build_model

    run_dir = start_run(cfg, out, resume, threads)
    train_path, valid_path = lm_split_path(cfg, "train"), lm_split_path(cfg, "valid")
    init = None
    if resume is not None:
        loaded = load_checkpoint(run_dir / "last", expect_kind="lm", device=device)
        tokenizer, model = loaded.tokenizer, loaded.model
    else:
        tc = cfg.tokenizer
        if tc.path:
            tokenizer = load_tokenizer(Path(tc.path))
        else:
            tokenizer = train_tokenizer(read_lines(train_path, "train file"), tc.kind,
                                        tc.vocab_size, tc.min_freq, tc.max_vocab, tc.lowercase)
        model = build_model("lm", cfg.model, tokenizer.vocab_size)
        init = init_embeddings_from(cfg, model, tokenizer)
    data = LMData(cached_token_stream(train_path, tokenizer),
                  cached_token_stream(valid_path, tokenizer), cfg.train.batch_size,
                  cfg.train.bptt)
    summary = run_training(cfg, model, data, run_dir, resume, reporter, device,
                           {"tokenizer": tokenizer})
    summary["vocab_size"] = tokenizer.vocab_size
    if init:
        summary["init_embeddings"] = init
    return summary


class DataWithMetrics:
    """Wraps a dataset for the Trainer and adds validation metrics beyond the loss
    (the `extra_metrics` hook): subclasses override extra_metrics, and may set
    metric / higher_is_better to select checkpoints by one of them."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.metric = getattr(type(self), "metric", data.metric)
        self.higher_is_better = getattr(type(self), "higher_is_better", data.higher_is_better)

    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch()

    def train_batches(self, epoch: int) -> Any:
        return self.data.train_batches(epoch)

    def valid_batches(self) -> Any:
        return self.data.valid_batches()

    def extra_metrics(self, model: Any, device: Any) -> dict[str, float]:
        return {}
