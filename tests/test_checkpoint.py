"""Checkpoint folders: exact round trip, atomic writes, safe and strict loading."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from seqtool.checkpoint import (
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    atomic_folder_write,
    load_checkpoint,
    save_checkpoint,
)
from seqtool.config import LMModelConfig, RunConfig, TrainConfig
from seqtool.data.tokenizer import WordTokenizer
from seqtool.errors import CheckpointError
from seqtool.models import build_model

WORDS = "the cat sat on a mat and then the dog ran to the red ball".split()


def make_parts(**model_kw):
    torch.manual_seed(0)
    tok = WordTokenizer.train([" ".join(WORDS)] * 3)
    mcfg = LMModelConfig(**{"emb_dim": 16, "hidden": 16, "layers": 1, "dropout": 0.1,
                            "cell": "lstm", **model_kw})
    cfg = RunConfig(model=mcfg, train=TrainConfig(epochs=1, batch_size=2, bptt=4))
    model = build_model("lm", mcfg, tok.vocab_size)
    with torch.no_grad():  # make the weights distinctive (biases start at zero)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval(), cfg, tok


def save(folder: Path, **kw) -> tuple:
    model, cfg, tok = make_parts(**kw.pop("model_kw", {}))
    save_checkpoint(folder, model=model, config=cfg, tokenizer=tok, card="# card\n", **kw)
    return model, cfg, tok


def logits(model, tok) -> torch.Tensor:
    ids = torch.tensor(tok.encode("the cat sat on the mat"))[:, None]
    with torch.no_grad():
        return model.log_probs(ids)[0]


@pytest.mark.parametrize("model_kw", [
    {}, {"cell": "peephole"},
    {"softmax": "adaptive", "cutoffs": (6, 10), "div_value": 2.0, "tie_weights": True},
    {"cell": "gru", "tie_weights": False, "hidden": 24},
])
def test_save_load_identical_logits(tmp_path, model_kw):
    model, cfg, tok = save(tmp_path / "ck", model_kw=model_kw)
    loaded = load_checkpoint(tmp_path / "ck", expect_kind="lm")
    assert loaded.config == cfg
    assert loaded.tokenizer.tokens == tok.tokens
    assert not loaded.model.training
    assert torch.equal(logits(loaded.model, loaded.tokenizer), logits(model, tok))
    pairs = zip(model.state_dict().items(), loaded.model.state_dict().items(), strict=True)
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name
    assert loaded.meta["format_version"] == FORMAT_VERSION
    assert (tmp_path / "ck" / "MODEL_CARD.md").read_text() == "# card\n"


def test_load_resolves_run_folder(tmp_path):
    save(tmp_path / "run" / "last")
    assert load_checkpoint(tmp_path / "run").folder == tmp_path / "run" / "last"
    save(tmp_path / "run" / "best")
    assert load_checkpoint(tmp_path / "run").folder == tmp_path / "run" / "best"


def test_atomic_write_keeps_previous_folder_on_failure(tmp_path):
    folder = tmp_path / "last"
    save(folder)
    before = {f.name: f.read_bytes() for f in folder.iterdir()}

    def broken(tmp: Path) -> None:
        (tmp / WEIGHTS_FILE).write_bytes(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_folder_write(folder, broken)
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no temp folders left
    load_checkpoint(folder)


def test_failed_save_checkpoint_keeps_previous(tmp_path, monkeypatch):
    model, cfg, tok = save(tmp_path / "last")
    before = (tmp_path / "last" / WEIGHTS_FILE).read_bytes()

    def fail(folder):
        raise OSError("no space left on device")

    monkeypatch.setattr(tok, "save", fail)  # fails after the weights were written
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(CheckpointError, match="previous checkpoint is intact"):  # not an OSError
        save_checkpoint(tmp_path / "last", model=model, config=cfg, tokenizer=tok, card="")
    assert (tmp_path / "last" / WEIGHTS_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


def test_overwrite_replaces_folder(tmp_path):
    save(tmp_path / "ck", model_kw={"hidden": 16})
    (tmp_path / "ck" / "stale.txt").write_text("x")
    save(tmp_path / "ck", model_kw={"hidden": 24})
    assert not (tmp_path / "ck" / "stale.txt").exists()
    assert load_checkpoint(tmp_path / "ck").config.model.hidden == 24
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def _expect_error(path, *words, kind=None) -> CheckpointError:
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path, expect_kind=kind)
    text = exc.value.message + " " + (exc.value.hint or "")
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"
    assert exc.value.hint
    return exc.value


def test_truncated_weights(tmp_path):
    save(tmp_path / "ck")
    w = tmp_path / "ck" / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    _expect_error(tmp_path / "ck", WEIGHTS_FILE, "truncated")


def test_corrupted_weights(tmp_path):
    save(tmp_path / "ck")
    w = tmp_path / "ck" / WEIGHTS_FILE
    w.write_bytes(os.urandom(w.stat().st_size))
    _expect_error(tmp_path / "ck", WEIGHTS_FILE, "corrupted")


def test_corrupted_weights_header_intact(tmp_path):
    save(tmp_path / "ck")
    w = tmp_path / "ck" / WEIGHTS_FILE
    data = w.read_bytes()
    w.write_bytes(data[:-7])  # header intact, last tensor short
    _expect_error(tmp_path / "ck", WEIGHTS_FILE)


def test_missing_weights(tmp_path):
    save(tmp_path / "ck")
    (tmp_path / "ck" / WEIGHTS_FILE).unlink()
    _expect_error(tmp_path / "ck", WEIGHTS_FILE, "missing")


@pytest.mark.parametrize("text", ["{not json", "", "[]", '{"format_version": "x"}',
                                  '{"kind": "lm"}'])
def test_damaged_config(tmp_path, text):
    save(tmp_path / "ck")
    (tmp_path / "ck" / CONFIG_FILE).write_text(text)
    _expect_error(tmp_path / "ck", CONFIG_FILE)


def test_config_missing_a_table(tmp_path):
    save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())
    del meta["model"]
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(meta))
    _expect_error(tmp_path / "ck", "model")


def test_config_with_invalid_value(tmp_path):
    save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())
    meta["model"]["cell"] = "transformer"
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "ck")


def test_newer_format_version(tmp_path):
    save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(meta))
    _expect_error(tmp_path / "ck", "newer", "upgrade")


def test_mismatched_weights(tmp_path):
    save(tmp_path / "ck", model_kw={"hidden": 16})
    meta = json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())
    meta["model"]["hidden"] = 24
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(meta))
    err = _expect_error(tmp_path / "ck", "rnn.weight_hh_l0")
    assert "truncated" not in err.hint  # the file is fine; the architecture differs


def test_mismatched_keys(tmp_path):
    save(tmp_path / "ck", model_kw={"cell": "lstm"})
    meta = json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())
    meta["model"]["cell"] = "peephole"
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(meta))
    _expect_error(tmp_path / "ck", "missing", "rnn.")


def test_wrong_kind(tmp_path):
    save(tmp_path / "ck")
    err = _expect_error(tmp_path / "ck", "'lm'", "translate", kind="translate")
    assert "translate" in err.message


def test_missing_and_not_a_checkpoint(tmp_path):
    _expect_error(tmp_path / "nope", "not found")
    (tmp_path / "empty").mkdir()
    _expect_error(tmp_path / "empty", CONFIG_FILE)
    (tmp_path / "file").write_text("x")
    _expect_error(tmp_path / "file", "folder")


def test_damaged_tokenizer(tmp_path):
    save(tmp_path / "ck")
    (tmp_path / "ck" / "tokenizer.json").write_text('{"kind": "word", "tokens": ["a"]}')
    _expect_error(tmp_path / "ck", "tokenizer")


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model, _, tok = save(tmp_path / "ck")

    def forbidden(*a, **k):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    loaded = load_checkpoint(tmp_path / "ck", expect_kind="lm")
    assert torch.equal(logits(loaded.model, loaded.tokenizer), logits(model, tok))
    assert not list((tmp_path / "ck").glob("*.pt")) and not list((tmp_path / "ck").glob("*.bin"))


def test_half_export(tmp_path):
    from safetensors import safe_open

    model, _, tok = save(tmp_path / "half", half=True)
    with safe_open(str(tmp_path / "half" / WEIGHTS_FILE), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"F16"}
    assert next(model.parameters()).dtype == torch.float32  # the live model is untouched
    save(tmp_path / "full")
    size = lambda d: (tmp_path / d / WEIGHTS_FILE).stat().st_size  # noqa: E731
    assert size("half") < 0.6 * size("full")
    loaded = load_checkpoint(tmp_path / "half")
    assert next(loaded.model.parameters()).dtype == torch.float32
    a, b = logits(loaded.model, loaded.tokenizer), logits(model, tok)
    assert not torch.equal(a, b)
    assert torch.allclose(a, b, atol=1e-2)
