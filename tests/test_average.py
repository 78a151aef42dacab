"""Checkpoint averaging (`seqtool average`) and train.keep_last's ckpt-<step>/ folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from cli_runner import assert_user_error, run_cli
from safetensors.torch import load_file
from test_training import make_cfg, write_corpus

from seqtool.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from seqtool.errors import CheckpointError
from seqtool.commands.train import train_lm
from seqtool.config import LMModelConfig, RunConfig, TrainConfig
from seqtool.data.tokenizer import WordTokenizer
from seqtool.models import build_model

WORDS = "the cat sat on a mat and then the dog ran to the red ball".split()


def save(folder: Path, seed: int, words: list[str] = WORDS, **model_kw) -> dict:
    """A small LM checkpoint with weights drawn from `seed`; its state dict."""
    torch.manual_seed(seed)
    tok = WordTokenizer.train([" ".join(words)] * 3)
    mcfg = LMModelConfig(**{"emb_dim": 16, "hidden": 16, "layers": 1, "cell": "lstm",
                            **model_kw})
    model = build_model("lm", mcfg, tok.vocab_size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    cfg = RunConfig(model=mcfg, train=TrainConfig(epochs=1))
    save_checkpoint(folder, model=model, config=cfg, tokenizer=tok, card="# card\n")
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_average_of_two_is_the_elementwise_mean(tmp_path):
    a, b = save(tmp_path / "a", 1), save(tmp_path / "b", 2)
    res = run_cli("average", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "avg", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["checkpoints"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    avg = load_checkpoint(tmp_path / "avg").model.state_dict()
    assert avg.keys() == a.keys()
    assert not any(torch.equal(a[k], b[k]) for k in a if a[k].numel())
    for k in a:
        torch.testing.assert_close(avg[k], (a[k] + b[k]) / 2, rtol=1e-6, atol=1e-7)
    card = (tmp_path / "avg" / "MODEL_CARD.md").read_text()
    assert "## Averaged" in card and str(tmp_path / "b") in card


def test_average_refuses_another_architecture(tmp_path):
    save(tmp_path / "a", 1)
    save(tmp_path / "b", 2, hidden=24)
    res = run_cli("average", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "avg")
    assert_user_error(res, "cannot average", "model.hidden 16 vs 24")
    assert not (tmp_path / "avg").exists()


def test_average_refuses_another_tokenizer_of_the_same_size(tmp_path):
    save(tmp_path / "a", 1)
    other = [w.upper() for w in WORDS]  # as many words, other pieces
    save(tmp_path / "b", 1, words=other)
    res = run_cli("average", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "avg")
    assert_user_error(res, "a different tokenizer", "tokenizer.json differs")


def test_average_bad_arguments(tmp_path):
    save(tmp_path / "a", 1)
    assert_user_error(run_cli("average", tmp_path / "a", "--out", tmp_path / "x"), "two or more")
    assert_user_error(run_cli("average", tmp_path / "a", tmp_path / "a", "--out",
                              tmp_path / "x"), "twice")
    save(tmp_path / "b", 2)
    assert_user_error(run_cli("average", tmp_path / "a", tmp_path / "b", "--out",
                              tmp_path / "a"), "is one of the checkpoints")
    assert_user_error(run_cli("average", tmp_path / "a", tmp_path / "b", "--last", "2",
                              "--out", tmp_path / "x"), "one run folder")


def step_folders(run: Path) -> list[str]:
    return sorted((p.name for p in run.iterdir() if "ckpt-" in p.name),
                  key=lambda n: int(n.rsplit("-", 1)[1]))


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> Path:
    """A tiny LM run of 16 steps evaluated every 2, keeping the last 3 evaluations."""
    root = tmp_path_factory.mktemp("keep")
    train, valid = write_corpus(root, 8)
    train_lm(make_cfg(train, valid, epochs=2, eval_every=2, keep_last=3), out=root / "run")
    return root / "run"


def test_keep_last_keeps_exactly_the_newest_n(kept):
    assert step_folders(kept) == ["ckpt-12", "ckpt-14", "ckpt-16"]  # no hidden leftovers
    for name in step_folders(kept):
        meta = json.loads((kept / name / "config.json").read_text())
        assert f"ckpt-{meta['metrics']['step']}" == name
        assert not (kept / name / "optimizer.safetensors").exists()  # weights only
    final, last = load_file(str(kept / "ckpt-16" / WEIGHTS_FILE)), load_file(
        str(kept / "last" / WEIGHTS_FILE))
    assert all(torch.equal(final[k], last[k]) for k in last)


def test_keep_last_a_failed_write_removes_nothing(tmp_path, monkeypatch):
    train, valid = write_corpus(tmp_path, 8)
    real = safetensors.torch.save_model

    def save_model(model, filename, *a, **kw):
        if ".ckpt-10.tmp" in str(filename):
            raise OSError(28, "No space left on device")
        return real(model, filename, *a, **kw)

    monkeypatch.setattr(safetensors.torch, "save_model", save_model)
    with pytest.raises(CheckpointError, match="disk is full"):  # one clean error
        train_lm(make_cfg(train, valid, epochs=2, eval_every=2, keep_last=3),
                 out=tmp_path / "run")
    assert step_folders(tmp_path / "run") == ["ckpt-4", "ckpt-6", "ckpt-8"]


def test_average_last_n_of_a_run(kept, tmp_path):
    res = run_cli("average", kept, "--last", "3", "--out", tmp_path / "avg", "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert result["steps"] == [12, 14, 16]
    weights = [load_file(str(kept / n / WEIGHTS_FILE)) for n in ("ckpt-12", "ckpt-14",
                                                                 "ckpt-16")]
    avg = load_file(str(tmp_path / "avg" / WEIGHTS_FILE))
    for k in avg:
        torch.testing.assert_close(avg[k], sum(w[k] for w in weights) / 3, rtol=1e-6,
                                   atol=1e-7)
    text = run_cli("average", kept, "--last", "2", "--out", tmp_path / "avg2")
    assert "averaged 2 lm checkpoints (steps 14, 16)" in text.out
    assert_user_error(run_cli("average", kept, "--last", "4", "--out", tmp_path / "x"),
                      "holds 3 step checkpoints", "fewer than --last 4")
