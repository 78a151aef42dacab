"""Strict configs: presets, unknown keys, types, ranges, choices, --set parsing."""

from __future__ import annotations

import pytest

from seqtool.config import RunConfig, TrainConfig
from seqtool.configfile import (
    build_config,
    load_config,
    parse_override,
    preset_names,
    preset_task,
)
from seqtool.errors import ConfigError
from seqtool.models import build_model, spec_for


def test_presets_exist_and_build():
    names = preset_names()
    assert {"lm-tiny", "lm-wikitext2", "lm-ptb", "translate-tiny",
            "translate-multi30k"} <= set(names)
    for name in names:
        cfg = load_config(preset_task(name), name)
        assert isinstance(cfg, RunConfig)
        assert isinstance(cfg.model, spec_for(cfg.task, cfg.model.arch).config)
        assert isinstance(cfg.train, TrainConfig)
        # the config round-trips through its JSON form (what checkpoints store)
        assert build_config(cfg.to_dict()) == cfg


def test_preset_values_and_defaults():
    cfg = load_config("lm", "lm-wikitext2")
    assert cfg.model.cutoffs == (2000, 10000)
    assert cfg.model.softmax == "adaptive"
    assert cfg.train.precision == "bf16"
    assert load_config("lm", None) == RunConfig()


def test_toml_file_and_overrides_win(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text('task = "lm"\n[model]\ncell = "gru"\nhidden = 24\n[train]\nlr = 0.1\n')
    cfg = load_config("lm", str(path), ("train.lr=0.5",), {"data": {"train_file": "a.txt",
                                                                     "corpus": None}})
    assert (cfg.model.cell, cfg.model.hidden, cfg.train.lr) == ("gru", 24, 0.5)
    assert cfg.data.train_file == "a.txt" and cfg.data.corpus == ""


def test_unknown_preset():
    with pytest.raises(ConfigError) as exc:
        load_config("lm", "lm-tinyy")
    assert "lm-tiny" in exc.value.hint


def test_bad_toml_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model\ncell = ")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config("lm", str(path))
    with pytest.raises(ConfigError, match="not found"):
        load_config("lm", str(tmp_path / "missing.toml"))


def test_unknown_key_did_you_mean():
    with pytest.raises(ConfigError) as exc:
        load_config("lm", "lm-tiny", ("train.lrr=0.1",))
    assert "train.lrr" in exc.value.message
    assert "did you mean" in exc.value.hint and "'lr'" in exc.value.hint


def test_unknown_key_without_close_match_lists_keys():
    with pytest.raises(ConfigError) as exc:
        build_config({"model": {"zzzzzz": 1}})
    assert "cell" in exc.value.hint and "hidden" in exc.value.hint


def test_unknown_table():
    with pytest.raises(ConfigError) as exc:
        build_config({"trian": {"lr": 0.1}})
    assert "[trian]" in exc.value.message
    assert "train" in exc.value.hint
    with pytest.raises(ConfigError, match="must be a table"):
        build_config({"train": 3})


def test_unknown_task():
    with pytest.raises(ConfigError, match="unknown task"):
        build_config({"task": "nope"})


@pytest.mark.parametrize("table,key,value", [
    ("train", "epochs", "ten"),
    ("train", "epochs", 2.5),
    ("train", "epochs", True),
    ("train", "lr", "fast"),
    ("model", "tie_weights", "maybe"),
    ("model", "tie_weights", 1.5),
    ("model", "cell", 3),
    ("model", "cutoffs", "a,b"),
    ("model", "cutoffs", [10, 20.5]),
    ("model", "cutoffs", [True]),
    ("train", "lr", float("nan")),
])
def test_wrong_type(table, key, value):
    with pytest.raises(ConfigError) as exc:
        build_config({table: {key: value}})
    assert f"{table}.{key} must be" in exc.value.message


@pytest.mark.parametrize("override,where", [
    ("train.lr=-1", "train.lr"),
    ("model.dropout=2", "model.dropout"),
    ("train.epochs=0", "train.epochs"),
    ("train.lr_decay=1.5", "train.lr_decay"),
])
def test_out_of_range(override, where):
    with pytest.raises(ConfigError) as exc:
        load_config("lm", "lm-tiny", (override,))
    assert where in exc.value.message and "out of range" in exc.value.message
    assert "allowed range" in exc.value.hint


def test_bad_choice_lists_choices():
    with pytest.raises(ConfigError) as exc:
        load_config("lm", "lm-tiny", ("model.cell=foo",))
    assert "model.cell" in exc.value.message and "'foo'" in exc.value.message
    for choice in ("lstm", "gru", "rnn_tanh", "rnn_relu", "peephole"):
        assert choice in exc.value.hint


@pytest.mark.parametrize("text,expected", [
    ("train.epochs=3", ("train", "epochs", 3)),
    ("train.lr=3e-4", ("train", "lr", 3e-4)),
    ("train.lr=0.5", ("train", "lr", 0.5)),
    ("model.tie_weights=false", ("model", "tie_weights", False)),
    ("model.tie_weights=true", ("model", "tie_weights", True)),
    ("model.cutoffs=[10, 20]", ("model", "cutoffs", [10, 20])),
    ("model.cell=gru", ("model", "cell", "gru")),
    ('model.cell="gru"', ("model", "cell", "gru")),
    ("data.train_file=a b.txt", ("data", "train_file", "a b.txt")),
    (" train.lr = 0.1", ("train", "lr", 0.1)),
])
def test_parse_override(text, expected):
    got = parse_override(text)
    assert got == expected
    assert type(got[2]) is type(expected[2])


@pytest.mark.parametrize("text", ["train.lr", "lr=0.1", "=3"])
def test_parse_override_malformed(text):
    with pytest.raises(ConfigError) as exc:
        parse_override(text)
    assert "table.key=value" in exc.value.hint


def test_overrides_are_coerced_and_checked():
    cfg = load_config("lm", "lm-tiny", ("model.cutoffs=5,10", "train.epochs=4.0",
                                       "model.tie_weights=no", "model.dropout=0"))
    assert cfg.model.cutoffs == (5, 10)
    assert cfg.train.epochs == 4 and isinstance(cfg.train.epochs, int)
    assert cfg.model.tie_weights is False
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)


def test_configs_are_frozen():
    cfg = load_config("lm", "lm-tiny")
    with pytest.raises(AttributeError):
        cfg.train.lr = 1.0  # type: ignore[misc]


def test_tiny_preset_builds_a_model():
    cfg = load_config("lm", "lm-tiny", ("model.cell=peephole",))
    model = build_model("lm", cfg.model, 40)
    assert model.kind == "lm"
    with pytest.raises(ConfigError, match="unknown task"):
        build_model("nope", cfg.model, 40)


def test_config_for_another_task(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('task = "translate"\n')
    with pytest.raises(ConfigError, match="translate"):
        load_config("lm", str(path))


def test_registry_default_arch_is_each_config_class_default():
    """The first spec of a task is its default; a config without `arch` builds it."""
    from seqtool.models.registry import SPECS, archs, tasks

    for task in tasks():
        first = next(s for s in SPECS if s.task == task)
        assert first.config().arch == archs(task)[0] == first.arch
    with pytest.raises(ConfigError, match="model.arch"):
        build_config({"task": "lm", "model": {"arch": "transformer"}})
