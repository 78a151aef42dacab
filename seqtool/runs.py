"""Run folders, shared by every `train` command: the default folder name, the
config of a resumed run, the model card, checkpoint saving around the one
Trainer (training.py), and the base of the tasks' data objects for it."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any

from seqtool.config import RunConfig
from seqtool.configfile import build_config
from seqtool.errors import TrainingError


class DataWithMetrics:
    """Wraps a dataset for the Trainer and adds validation metrics beyond the loss
    (the `extra_metrics` hook): subclasses override extra_metrics, and may set
    metric / higher_is_better to select checkpoints by one of them."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.metric = getattr(type(self), "metric", data.metric)
        self.higher_is_better = getattr(type(self), "higher_is_better", data.higher_is_better)

    def steps_per_epoch(self) -> int:
        return int(self.data.steps_per_epoch())

    def train_batches(self, epoch: int) -> Any:
        return self.data.train_batches(epoch)

    def valid_batches(self) -> Any:
        return self.data.valid_batches()

    def extra_metrics(self, model: Any, device: Any) -> dict[str, float]:
        return {}

    def shard(self, rank: int, world: int) -> DataWithMetrics:
        """This wrapper around rank `rank`'s share of the data (seqtool/distributed.py)."""
        import copy

        twin = copy.copy(self)
        twin.data = self.data.shard(rank, world)
        return twin


def default_run_dir(cfg: RunConfig) -> Path:
    """runs/<task>-<corpus or file>[-<src>-<tgt>]-<time>."""
    d = cfg.data
    if d.corpus and not d.train_src:
        name = d.corpus
    elif d.hf_dataset:
        name = d.hf_dataset.split(":")[0].split("/")[-1]
    else:
        name = Path(d.train_src or d.train_file).stem or "data"
    if d.src_lang and d.tgt_lang:
        name += f"-{d.src_lang}-{d.tgt_lang}"
    return Path("runs") / f"{cfg.task}-{name}-{datetime.now():%Y%m%d-%H%M%S}"


_RECIPE: ContextVar[str | None] = ContextVar("seqtool_recipe", default=None)


def this_command() -> str:
    """The command that started this run, for the model card: the command line, or
    the Python call that `recorded_as` names."""
    return _RECIPE.get() or " ".join(shlex.quote(a) for a in ["seqtool", *sys.argv[1:]])


@contextlib.contextmanager
def recorded_as(call: str) -> Iterator[None]:
    """Runs trained inside this block record `call` as their recipe (the Python API:
    sys.argv is the notebook's or script's, not a seqtool command)."""
    token = _RECIPE.set(call)
    try:
        yield
    finally:
        _RECIPE.reset(token)


def model_card(cfg: RunConfig, model_line: str, data_lines: list[str],
               metrics: dict[str, Any] | None = None, commands: list[str] | None = None) -> str:
    """The run's card: model (the model's own `describe`), data, the command that
    started the run (and those that resumed it), the last validation metrics."""
    first, *resumed = commands or [this_command()]
    recipe = [first] + [f"# resumed with: {c}" for c in resumed]
    lines = [f"# seqtool {cfg.task} model", "", f"- model: {model_line}", *data_lines, "",
             "## Recipe", "", "```", *recipe, "```", "", "## Metrics", ""]
    for k, v in (metrics or {}).items():
        lines.append(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def check_same_architecture(old: RunConfig, new: RunConfig) -> None:
    if old.model != new.model or old.tokenizer != new.tokenizer:
        diffs = [k for k in old.model.__dataclass_fields__
                 if getattr(old.model, k) != getattr(new.model, k, None)]
        raise TrainingError(f"--resume into a run with a different architecture "
                            f"(differs: {', '.join(diffs) or 'tokenizer'})",
                            "drop the model overrides, or start a new run with --out")


def resume_config(run_dir: Path, overrides: tuple[str, ...] = (),
                  tables: Mapping[str, Mapping[str, Any]] | None = None) -> RunConfig:
    """The run's own config with `--set` overrides (or `tables`: {"train": {"epochs":
    20}}, as the Python API gives them); the architecture may not change."""
    from seqtool.checkpoint import read_meta
    from seqtool.configfile import parse_override

    from seqtool.folders import check_free, recover

    check_free(run_dir)
    last = Path(run_dir) / "last"
    recover(last)  # a checkpoint swap that kill -9 cut short
    if not (last / "config.json").exists():
        raise TrainingError(f"no resumable checkpoint in {run_dir}/last",
                            "give the run folder that train wrote (--out)")
    meta = read_meta(last)
    raw: dict[str, Any] = {k: meta[k] for k in ("task", "data", "tokenizer", "model", "train",
                                                 "search") if k in meta}
    old = build_config(raw)
    for table, values in (tables or {}).items():
        raw[table] = {**raw.get(table, {}), **values}
    for text in overrides:
        table, name, value = parse_override(text)
        raw.setdefault(table, {})[name] = value
    cfg = build_config(raw)
    check_same_architecture(old, cfg)
    return cfg


def init_embeddings_from(cfg: RunConfig, model: Any, tokenizer: Any, tgt_tokenizer: Any = None
                         ) -> dict[str, Any] | None:
    """train.init_embeddings (--init-embeddings FILE): copy word2vec vectors into a new
    model's input embeddings (models/pretrained.py); how many words were found."""
    if not cfg.train.init_embeddings:
        return None
    from seqtool.models.pretrained import init_embeddings

    return init_embeddings(model, cfg.train.init_embeddings, tokenizer, tgt_tokenizer)


def start_run(cfg: RunConfig, out: Path | None, resume: Path | None, threads: int,
              device: str = "cpu") -> Path:
    """Threads, seed, and the run folder: a resumed one, or a new one that must be empty.
    A missing optional package the config asks for fails here, before any work.
    Under torchrun this joins the other processes (seqtool/distributed.py); the run
    folder is rank 0's, and `device` "cuda" means this rank's GPU from here on."""
    import torch

    from seqtool.distributed import broadcast, init, per_rank_batch, world_from_env
    from seqtool.folders import check_free
    from seqtool.runtime import set_threads

    world = world_from_env()
    if world.parallel:
        per_rank_batch(cfg.train.batch_size, world.size)  # refused before any work

    if cfg.train.tensorboard:
        from seqtool.history import require_tensorboard

        require_tensorboard()
    set_threads(threads)
    torch.manual_seed(cfg.train.seed)
    if resume is not None:
        init(world, device, cfg.train.dist_timeout)
        return Path(resume)
    run_dir = Path(out) if out else default_run_dir(cfg)
    check_free(run_dir)  # another training there: say so, not "already holds a run"
    if (run_dir / "last").exists():
        raise TrainingError(f"{run_dir} already holds a run",
                            f"resume it with --resume {run_dir}, or choose another --out")
    if world.parallel:  # after the check: rank 0 writes last/ only once all have joined
        init(world, device, cfg.train.dist_timeout)
        run_dir = Path(broadcast(str(run_dir)))
    return run_dir


def run_training(cfg: RunConfig, model: Any, data: Any, run_dir: Path, resume: Path | None,
                 reporter: Any, device: str, tokenizers: dict[str, Any],
                 stats: dict[str, Any] | None = None, data_lines: list[str] | None = None
                 ) -> dict[str, Any]:
    """The part every task shares: the run folder's lock (folders.lock_run: a second
    training on it refuses), checkpoint saving, the Trainer, exact resume (a `--set
    train.lr=...` on resume takes effect), and the run's summary. `tokenizers` holds
    `tokenizer` (and `tgt_tokenizer` for two vocabularies); `data_lines` are the
    model card's data and tokenizer lines."""
    import contextlib

    from seqtool.distributed import world_from_env
    from seqtool.folders import lock_run

    # under torchrun rank 0 alone holds the lock (the folder is its own)
    with lock_run(run_dir) if world_from_env().main else contextlib.nullcontext():
        if resume is None and (run_dir / "last").exists():  # the other one finished first
            raise TrainingError(f"{run_dir} already holds a run",
                                f"resume it with --resume {run_dir}, or choose another --out")
        return _train_locked(cfg, model, data, run_dir, resume, reporter, device, tokenizers,
                             stats, data_lines)


def _train_locked(cfg: RunConfig, model: Any, data: Any, run_dir: Path, resume: Path | None,
                  reporter: Any, device: str, tokenizers: dict[str, Any],
                  stats: dict[str, Any] | None, data_lines: list[str] | None
                  ) -> dict[str, Any]:
    from seqtool.checkpoint import load_training_state, read_meta, save_checkpoint
    from seqtool.distributed import world_from_env
    from seqtool.models.base import count_parameters
    from seqtool.training import Trainer

    world = world_from_env()
    if world.parallel:
        data = shard(data, world.rank, world.size)
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    params = sum(count_parameters(model).values())
    model_line = model.describe(params)
    extra = {"data_stats": stats} if stats else {}
    last_meta = read_meta(run_dir / "last") if resume is not None else {}
    # the card's recipe: the command that started the run, then each resume
    commands = last_meta.get("commands", []) + [this_command()]

    def save(name: str, training: dict[str, Any] | None) -> None:
        metrics = {}
        if trainer.state.history:
            metrics = {k: v for k, v in trainer.state.history[-1].items()
                       if k.startswith("valid_") or k in ("step", "epoch")}
        card = model_card(cfg, model_line, data_lines or [], metrics, commands)
        save_checkpoint(run_dir / name, model=model, config=cfg, **tokenizers, card=card,
                        training=training,
                        extra_meta={"metrics": metrics, "commands": commands, **extra})

    trainer = Trainer(model, data, cfg.train, run_dir, save, reporter, device,
                      resume_command=f"seqtool train {cfg.task}", world=world)
    if resume is not None:
        old_lr = float(last_meta["train"]["lr"])
        trainer.restore(load_training_state(run_dir / "last"))
        if cfg.train.lr != old_lr:  # --set train.lr=... on resume
            trainer.state.lr = cfg.train.lr
    board = None
    if cfg.train.tensorboard and world.main:
        from seqtool.history import TENSORBOARD_DIR, TensorBoardReporter
        from seqtool.reporting import NullReporter, Reporters

        # resumed: hide what a crashed run logged after its last checkpoint
        board = TensorBoardReporter(run_dir / TENSORBOARD_DIR,
                                    trainer.state.global_step + 1 if resume is not None else None)
        trainer.reporter = Reporters(reporter or NullReporter(), board)
    try:
        summary = trainer.run()
    finally:
        if board is not None:
            board.close()
    summary["parameters"] = params
    if world.parallel:
        from seqtool.distributed import close

        close()  # every rank is past the last collective (the final last/)
        summary.update(world_size=world.size, rank=world.rank)
    return summary


def shard(data: Any, rank: int, world: int) -> Any:
    """Rank `rank`'s share of a task's data (its `shard`, seqtool/distributed.py);
    refused where a rank would get no step at all."""
    from seqtool.errors import DataError

    part = data.shard(rank, world)
    if part.steps_per_epoch() < 1:
        err = DataError(f"too little training data for {world} processes: a process gets "
                        "no batch", "use fewer processes, a smaller train.batch_size or "
                        "more data")
        err.every_rank = True
        raise err
    return part
