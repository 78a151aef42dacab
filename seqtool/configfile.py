"""Reading configs: presets and TOML files, `--set table.key=value` overrides,
and the strict checks that turn them into the typed, frozen tables of
seqtool.config (unknown keys with a "did you mean", choices and ranges)."""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from seqtool.config import (
    TABLES,
    DataConfig,
    RunConfig,
    SearchConfig,
    TokenizerConfig,
    TrainConfig,
)
from seqtool.errors import ConfigError, did_you_mean
from seqtool.models.registry import spec_for


def _table_classes(task: str, model: Any) -> dict[str, type]:
    """The classes of a run's tables; [model] by its arch (models/registry.py)."""
    arch = model.get("arch") if isinstance(model, dict) else None
    if arch is not None and not isinstance(arch, str):
        raise ConfigError(f"model.arch must be str, got {arch!r}")
    return {"data": DataConfig, "tokenizer": TokenizerConfig,
            "model": spec_for(task, arch).config, "train": TrainConfig, "search": SearchConfig}


def _field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def coerce(value: Any, f: dataclasses.Field, where: str, typ: Any) -> Any:
    """`value` (from TOML, `--set` or a command-line flag) as the field's type, checked
    against its choices and range; ConfigError naming `where` otherwise."""
    value = _as_type(value, typ, where)
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{where} = {value!r} is not a valid choice",
                          f"choose one of: {', '.join(meta['choices'])}")
    low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
    if (low is not None and value < low or high is not None and value > high
            or above is not None and value <= above):
        start = f"[{low}" if low is not None else f"({above}" if above is not None else "(-inf"
        rng = f"{start}, {high if high is not None else 'inf'}{']' if high is not None else ')'}"
        raise ConfigError(f"{where} = {value!r} is out of range", f"allowed range: {rng}")
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        value = value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise TypeError
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise TypeError
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    value = float(value)
    if not math.isfinite(value):  # NaN passes every range check; inf means nothing here
        raise ValueError
    return value


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _to_ints(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if any(isinstance(v, bool) or isinstance(v, float) and not v.is_integer() for v in value):
        raise TypeError
    return tuple(int(v) for v in value)


_CONVERTERS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _as_type(value: Any, typ: Any, where: str) -> Any:
    """`value` as a config field of type `typ` (bool, int, float, str or tuple[int, ...]);
    strings from `--set` and flags are parsed, other types refused."""
    convert = _to_ints if typing.get_origin(typ) is tuple else _CONVERTERS.get(typ)
    if convert is None:
        return value
    try:
        return convert(value)
    except (TypeError, ValueError):
        tname = getattr(typ, "__name__", str(typ))
        example = {bool: "true", int: "8", float: "0.001", str: '"word"'}.get(typ, "1,2")
        raise ConfigError(f"{where} must be {tname}, got {value!r}",
                          f"give a finite {tname}, e.g. {example}" if typ in (int, float)
                          else f"give a {tname}, e.g. {example}") from None


def coerce_key(cls: type, name: str, value: Any, where: str) -> Any:
    """One key of a config class, checked as in a TOML table (for command-line flags)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return coerce(value, f, where, _field_type(cls, name))


def _build_table(cls: type, values: dict[str, Any], table: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{table}.{key}'",
                              did_you_mean(key, names) or f"valid keys in [{table}]: "
                              + ", ".join(names))
        kwargs[key] = coerce(value, names[key], f"{table}.{key}", _field_type(cls, key))
    return cls(**kwargs)


def replace_checked(obj: Any, changes: dict[str, Any], names: dict[str, str] | None = None
                    ) -> Any:
    """`obj` (a frozen config) with the `changes` that are not None, each checked by
    the same code as a TOML key; `names` maps a key to the flag that set it, for the
    error message (default: the key)."""
    cls = type(obj)
    given = {k: coerce_key(cls, k, v, (names or {}).get(k, k)) for k, v in changes.items()
             if v is not None}
    return dataclasses.replace(obj, **given)


def build_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a nested dict (from TOML or JSON) into a RunConfig."""
    raw = dict(raw)
    task = raw.pop("task", "lm")
    classes = _table_classes(task, raw.get("model"))
    for key in raw:
        if key not in classes:
            raise ConfigError(f"unknown config table [{key}]",
                              did_you_mean(key, classes) or "valid tables: " + ", ".join(TABLES))
        if not isinstance(raw[key], dict):
            raise ConfigError(f"[{key}] must be a table")
    tables = {t: _build_table(cls, raw.get(t, {}), t) for t, cls in classes.items()}
    return RunConfig(task=task, **tables)


def parse_override(text: str) -> tuple[str, str, Any]:
    """'train.lr=3e-4' -> ('train', 'lr', 3e-4)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"bad --set {text!r}", "write it as table.key=value, e.g. train.lr=3e-4")
    key, value = text.split("=", 1)
    table, name = key.strip().split(".", 1)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return table, name, parsed


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}",
                          "give a TOML file path or a preset name (seqtool train lm --help)")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse {p}: {exc}", "check the TOML syntax") from None


def preset_names() -> list[str]:
    files = resources.files("seqtool.presets").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".toml"))


def preset_task(name: str) -> str:
    """The task a shipped preset is for ("lm", "translate")."""
    text = resources.files("seqtool.presets").joinpath(name + ".toml").read_text()
    return str(tomllib.loads(text).get("task", "lm"))


def load_config(task: str, preset: str | None, overrides: tuple[str, ...] = (),
                extra: dict[str, dict[str, Any]] | None = None) -> RunConfig:
    """Preset or TOML file, then `extra` (from flags), then `--set` overrides."""
    raw: dict[str, Any] = {}
    if preset:
        if Path(preset).suffix == ".toml" or Path(preset).exists():
            raw = read_toml(preset)
        elif preset in preset_names():
            text = resources.files("seqtool.presets").joinpath(preset + ".toml").read_text()
            raw = tomllib.loads(text)
        else:
            raise ConfigError(f"unknown preset {preset!r}",
                              did_you_mean(preset, preset_names())
                              or "presets: " + ", ".join(preset_names()))
    raw.setdefault("task", task)
    if raw["task"] != task:
        raise ConfigError(f"config is for task {raw['task']!r}, not {task!r}")
    for table, values in (extra or {}).items():
        raw.setdefault(table, {}).update({k: v for k, v in values.items() if v is not None})
    for text in overrides:
        table, name, value = parse_override(text)
        raw.setdefault(table, {})[name] = value
    return build_config(raw)

