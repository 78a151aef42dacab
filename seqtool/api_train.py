"""seqtool.train: train a model from Python as `seqtool train` does, with a preset,
a TOML file or a RunConfig plus tables of keys; the run folder and its summary
(seqtool/api.py names it as part of the API)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seqtool.config import RunConfig
from seqtool.errors import ConfigError

TABLE_ARGS = ("data", "tokenizer", "model", "train", "search")  # seqtool.train's tables


def check_device(device: str) -> str:
    """A --device value checked as the flag checks it, then resolved (auto -> cuda/cpu)."""
    from seqtool.runtime import DEVICES, resolve_device

    if device not in DEVICES and not device.startswith("cuda:"):
        raise ConfigError(f"device = {device!r} is not a valid choice",
                          "choose one of: " + ", ".join(DEVICES))
    return resolve_device(device)


_EXAMPLES = {"data": {"train_file": "train.txt"}, "tokenizer": {"vocab_size": 8000},
             "model": {"hidden": 256}, "train": {"epochs": 2}, "search": {"beam_size": 5}}


def _plain(values: Any, table: str) -> dict[str, Any]:
    """A table's values as the config reader takes them (paths as strings)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{table}= must be a dict of [{table}] keys, got {values!r}",
                          f"e.g. {table}={_EXAMPLES[table]!r}")
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def _new_config(config: str | Path | RunConfig | None, task: str | None,
                tables: dict[str, dict[str, Any]]) -> RunConfig:
    from seqtool.configfile import (build_config, load_config, preset_names, preset_task,
                                    read_toml)

    if isinstance(config, RunConfig):
        raw = config.to_dict()
        for table, values in tables.items():
            raw[table] = {**raw.get(table, {}), **values}
        cfg = build_config(raw)
    elif config is None:
        if task is None:
            raise ConfigError("give a config: a preset name, a TOML file or a RunConfig",
                              "presets: " + ", ".join(preset_names()) + '; or task="lm" '
                              "(with its defaults)")
        cfg = load_config(task, None, (), tables)
    else:
        name = str(config)
        if name in preset_names():
            found = preset_task(name)
        elif Path(name).suffix == ".toml" or Path(name).exists():
            found = str(read_toml(name).get("task", "lm"))
        else:
            found = task or "lm"  # load_config names the unknown preset
        cfg = load_config(found, name, (), tables)
    if task is not None and cfg.task != task:
        raise ConfigError(f"the config is for task {cfg.task!r}, not {task!r}",
                          "drop task=, or give a config for that task")
    return cfg


def _call(config: Any, kw: dict[str, Any]) -> str:
    """The model card's recipe for a run trained from Python."""
    first = "<RunConfig>" if isinstance(config, RunConfig) else repr(
        str(config) if isinstance(config, Path) else config)
    args = [first] if config is not None else []
    args += [f"{k}={str(v) if isinstance(v, Path) else v!r}" for k, v in kw.items()
             if v is not None]
    return f"seqtool.train({', '.join(args)})"


def train(config: str | Path | RunConfig | None = None, *, out: str | Path | None = None,
          resume: str | Path | None = None, task: str | None = None,
          data: Mapping[str, Any] | None = None, tokenizer: Mapping[str, Any] | None = None,
          model: Mapping[str, Any] | None = None, train: Mapping[str, Any] | None = None,
          search: Mapping[str, Any] | None = None, device: str = "auto", threads: int = 0,
          reporter: Any = None) -> dict[str, Any]:
    """Train a model as `seqtool train <task>` does, and return the run's summary (what
    `--json` prints: steps, best metric, run_dir, ...).

    `config` is a preset name ("lm-tiny", "translate-multi30k", ...), a TOML file, or
    a RunConfig; or give `task` ("lm", "translate", "chat", "word2vec") alone for its
    defaults. `data`, `tokenizer`, `model`, `train` and `search` override keys of
    those tables, e.g. data={"train_file": "a.txt", "valid_file": "b.txt"},
    train={"epochs": 2}; each key is checked as in a TOML file. `resume` continues
    the run in that folder exactly (its own config; only overrides may be given).
    The run folder is `out` (default runs/<task>-...). `reporter` receives the
    progress events (on_start, on_step, on_eval, on_end); by default nothing is
    shown."""
    from seqtool.runs import recorded_as, resume_config

    given = {"data": data, "tokenizer": tokenizer, "model": model, "train": train,
             "search": search}
    tables = {k: _plain(v, k) for k, v in given.items() if v is not None}
    if resume is not None:
        if config is not None:
            raise ConfigError("resume takes its data and config from the run",
                              "give only the overrides, e.g. train={'epochs': 20}")
        cfg = resume_config(Path(resume), (), tables)
    else:
        cfg = _new_config(config, task, tables)
    call = _call(config, {"out": out, "resume": resume, "task": task, **given})
    with recorded_as(call):
        return _run(cfg, Path(out) if out else None, Path(resume) if resume else None,
                    reporter, check_device(device), threads)


def _run(cfg: RunConfig, out: Path | None, resume: Path | None, reporter: Any, device: str,
         threads: int) -> dict[str, Any]:
    if cfg.task == "word2vec":
        from seqtool.commands.word2vec import train_word2vec

        if resume is not None:
            raise ConfigError("word2vec training cannot be resumed", "train it again")
        return train_word2vec(cfg, out, reporter, threads)
    if cfg.task == "translate":
        from seqtool.commands.train_translate import train_translate

        return train_translate(cfg, out, resume, reporter, device, threads)
    if cfg.task == "chat":
        from seqtool.commands.train_chat import train_chat

        return train_chat(cfg, out, resume, reporter, device, threads)
    from seqtool.commands.train import train_lm

    return train_lm(cfg, out, resume, reporter, device, threads)
