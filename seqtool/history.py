"""A run's history: written while it trains, read back by `seqtool plot` and
`seqtool info`.

    RUN/metrics.jsonl   one line per evaluation: step, epoch, tokens seen, lr, valid_*
    RUN/train.jsonl     one line per train.log_every steps: the window's mean training
                        loss and perplexity, the learning rate, tokens seen, tokens/s
    RUN/tensorboard/    both as TensorBoard events (train.tensorboard = true; the
                        tensorboard extra), tags train/* and valid/*

A run resumed after a crash trains the steps after its last checkpoint again and
appends their records a second time; reading keeps the later ones (TensorBoard's
own purge_step does the same for the event files).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from seqtool.errors import ConfigError, InputError

METRICS_FILE = "metrics.jsonl"
TRAIN_LOG_FILE = "train.jsonl"
TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_HINT = ("install the TensorBoard extra: pip install 'seqtool[tensorboard]' "
                    "(or pip install tensorboard), or drop train.tensorboard")
RUN_HINT = "give a run folder that seqtool train wrote (--out)"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """One JSON line at the end of `path` (a failed write: one CheckpointError)."""
    from seqtool.folders import write_error

    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    except OSError as exc:
        raise write_error(path, exc, "the log") from None


@dataclass
class RunHistory:
    """A run's evaluations and training-loss windows, in step order."""

    run: Path
    evals: list[dict[str, Any]]
    train: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.run.name or str(self.run)

    def series(self, key: str, x: str = "step", source: str = "evals"
               ) -> tuple[list[float], list[float]]:
        """(xs, ys) of the finite values of `key` in the evaluations or the training
        windows, against "step" or "tokens" (records without either are left out)."""
        xs, ys = [], []
        for r in self.evals if source == "evals" else self.train:
            xv, yv = r.get("tokens" if x == "tokens" else "step"), r.get(key)
            if _number(xv) and _number(yv):
                xs.append(float(xv))
                ys.append(float(yv))
        return xs, ys

    def summary(self) -> dict[str, Any]:
        """What `seqtool plot --json` and the table show about the run."""
        last = self.evals[-1]
        out: dict[str, Any] = {"run": str(self.run), "evaluations": len(self.evals),
                               "train_points": len(self.train), "last_step": last.get("step"),
                               "tokens": last.get("tokens"),
                               "valid_loss": self.series("valid_loss")[1]}
        for key, best in (("valid_loss", min), ("valid_ppl", min), ("valid_bleu", max)):
            steps, values = self.series(key)
            if values:
                i = values.index(best(values))
                out[f"best_{key}"] = {"value": values[i], "step": int(steps[i])}
        return out


def _number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of `path` in step order; where a resumed run wrote steps again,
    the later records replace the earlier ones."""
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                         RUN_HINT) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not _number(record.get("step")):
            raise InputError(f"{path} line {n} is not a record with a step",
                             "the file is damaged: remove that line, or give another run")
        while records and records[-1]["step"] >= record["step"]:
            records.pop()
        records.append(record)
    return records


def run_folder(path: Path) -> Path:
    """The run folder of `path`: the path itself, or the run a checkpoint folder in it
    (RUN/best, RUN/last, RUN/ckpt-<step>) belongs to."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"run folder not found: {path}", RUN_HINT)
    if not path.is_dir():
        raise InputError(f"{path} is a file, not a run folder", RUN_HINT)
    if not (path / METRICS_FILE).exists() and (path.parent / METRICS_FILE).exists():
        return path.parent
    return path


def read_history(path: Path) -> RunHistory:
    """A run's history; an error when it has no evaluation to show."""
    run = run_folder(path)
    metrics = run / METRICS_FILE
    if not metrics.is_file():
        raise InputError(f"no {METRICS_FILE} in {run}: not a run folder, or one from before "
                         "its first evaluation", RUN_HINT)
    evals = read_records(metrics)
    if not evals:
        raise InputError(f"{metrics} is empty: the run has not evaluated yet",
                         "wait for its first evaluation (each epoch, or every train.eval_every "
                         "steps), or give another run")
    train_log = run / TRAIN_LOG_FILE
    return RunHistory(run, evals, read_records(train_log) if train_log.is_file() else [])


def find_history(checkpoint: Path) -> RunHistory | None:
    """The history of the run a checkpoint folder belongs to, or None when there is
    none to show (a shipped or exported model, a damaged file)."""
    for run in (checkpoint, checkpoint.parent):
        if (run / METRICS_FILE).is_file():
            try:
                return read_history(run)
            except InputError:
                return None
    return None


def require_tensorboard() -> None:
    """Fail before training when train.tensorboard is on and the package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("train.tensorboard = true needs the tensorboard package, which is "
                          "not installed", TENSORBOARD_HINT) from None


class TensorBoardReporter:
    """A training Reporter (training.py) that writes TensorBoard scalars: train/loss,
    train/ppl, train/lr, train/tokens_per_s per progress report, valid/<metric> per
    evaluation. `purge_step` (a resumed run's first new step) hides the events that
    an interrupted run wrote after its last checkpoint."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def on_start(self, info: dict[str, Any]) -> None:
        pass

    def on_step(self, stats: dict[str, Any]) -> None:
        for key in ("loss", "ppl", "lr", "tokens_per_s"):
            self.writer.add_scalar(f"train/{key}", stats[key], stats["step"])

    def on_eval(self, metrics: dict[str, Any]) -> None:
        for key, value in metrics.items():
            if key.startswith("valid_") and _number(value):
                self.writer.add_scalar(f"valid/{key[6:]}", value, metrics["step"])
        self.writer.flush()

    def on_end(self, summary: dict[str, Any]) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
