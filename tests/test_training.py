"""The training loop: resume == uninterrupted, non-finite loss, Ctrl-C, early stopping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import seqtool.training
from seqtool.checkpoint import WEIGHTS_FILE
from seqtool.commands.train import train_lm
from seqtool.runs import resume_config
from seqtool.configfile import build_config
from seqtool.errors import Interrupted, TrainingError
from seqtool.models.lm import RNNLM

BATCH, BPTT = 4, 5
PATTERN = "the cat sat on the mat . a dog ran to the red ball and the cat saw it .".split()


def write_corpus(folder: Path, steps_per_epoch: int) -> tuple[Path, Path]:
    """A repeating pattern with `steps_per_epoch` windows per epoch (one line per sentence)."""
    n_tokens = (steps_per_epoch * BPTT + 1) * BATCH  # <eos> after each line counts
    words, lines = [], []
    i = 0
    while len(words) + len(lines) < n_tokens:
        line = [PATTERN[(i + j) % len(PATTERN)] for j in range(3 + i % 5)]
        lines.append(" ".join(line))
        words.extend(line)
        i += 3
    train, valid = folder / "train.txt", folder / "valid.txt"
    train.write_text("\n".join(lines) + "\n")
    valid.write_text("\n".join(lines[::-3][:12]) + "\n")
    return train, valid


def make_cfg(train: Path, valid: Path, **train_kw):
    return build_config({
        "data": {"train_file": str(train), "valid_file": str(valid)},
        "model": {"cell": "lstm", "emb_dim": 16, "hidden": 16, "layers": 2, "dropout": 0.3},
        "train": {"epochs": 3, "batch_size": BATCH, "bptt": BPTT, "lr": 1e-2, "log_every": 1,
                  "patience": 0, **train_kw},
    })


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / WEIGHTS_FILE))


def state(run: Path) -> dict:
    return json.loads((run / "last" / "trainer_state.json").read_text())


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = last_weights(a), last_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


def resume(run: Path, *overrides: str) -> dict:
    return train_lm(resume_config(run, overrides), resume=run)


@pytest.fixture
def corpus8(tmp_path):
    return write_corpus(tmp_path, 8)


def test_corpus_has_the_planned_steps(corpus8):
    from seqtool.data.lm import LMData, encode_stream
    from seqtool.data.text import read_lines
    from seqtool.data.tokenizer import WordTokenizer

    lines = read_lines(corpus8[0])
    tok = WordTokenizer.train(lines)
    data = LMData(encode_stream(lines, tok), encode_stream(read_lines(corpus8[1]), tok),
                  BATCH, BPTT)
    assert data.steps_per_epoch() == 8


def test_resume_mid_epoch_equals_uninterrupted(tmp_path):
    train, valid = write_corpus(tmp_path, 20)
    one = train_lm(make_cfg(train, valid, epochs=1, eval_every=5, max_steps=12),
                   out=tmp_path / "one")
    assert one["steps"] == 12
    first = train_lm(make_cfg(train, valid, epochs=1, eval_every=5, max_steps=5),
                     out=tmp_path / "two")
    assert first["steps"] == 5 and state(tmp_path / "two")["step_in_epoch"] == 5
    one, two = last_weights(tmp_path / "one"), last_weights(tmp_path / "two")
    assert not all(torch.equal(a, b) for a, b in zip(one.values(), two.values(), strict=True))
    second = resume(tmp_path / "two", "train.max_steps=12")
    assert second["steps"] == 12
    assert_same_weights(tmp_path / "one", tmp_path / "two")
    assert state(tmp_path / "one")["lr"] == state(tmp_path / "two")["lr"]


@pytest.mark.parametrize("stops", [(5,), (8,), (10,), (3, 9)])
def test_resume_across_epochs_equals_uninterrupted(tmp_path, corpus8, stops):
    train, valid = corpus8
    train_lm(make_cfg(train, valid, max_steps=12), out=tmp_path / "one")
    train_lm(make_cfg(train, valid, max_steps=stops[0]), out=tmp_path / "two")
    for stop in stops[1:]:
        resume(tmp_path / "two", f"train.max_steps={stop}")
        assert state(tmp_path / "two")["global_step"] == stop
    resume(tmp_path / "two", "train.max_steps=12")
    s1, s2 = state(tmp_path / "one"), state(tmp_path / "two")
    assert (s1["global_step"], s1["epoch"], s1["step_in_epoch"]) == (12, 1, 4)
    assert (s2["global_step"], s2["epoch"], s2["step_in_epoch"]) == (12, 1, 4)
    assert_same_weights(tmp_path / "one", tmp_path / "two")


def test_resume_keeps_schedule_when_validation_stalls(tmp_path, corpus8, monkeypatch):
    """A stop at max_steps evaluates once more; that extra evaluation must not change the
    plateau schedule or early stopping, or a resumed run drifts from an uninterrupted one."""
    def stalled(model, batches, device, precision="fp32"):  # validation never improves
        return {"loss": 2.0, "ppl": math.exp(2.0), "tokens": 10}

    monkeypatch.setattr(seqtool.training, "evaluate_loss", stalled)
    train, valid = corpus8
    kw = {"epochs": 4, "patience": 2, "schedule": "plateau", "lr_decay": 0.5}
    one = train_lm(make_cfg(train, valid, **kw), out=tmp_path / "one")
    assert one["stop_reason"] == "early stopping" and one["steps"] == 24
    train_lm(make_cfg(train, valid, max_steps=5, **kw), out=tmp_path / "two")
    two = resume(tmp_path / "two", "train.max_steps=0")
    assert (two["stop_reason"], two["steps"]) == (one["stop_reason"], one["steps"])
    assert state(tmp_path / "two")["lr"] == state(tmp_path / "one")["lr"] == 1e-2 * 0.25
    assert_same_weights(tmp_path / "one", tmp_path / "two")


def _patch_loss(monkeypatch, at_step: int, action) -> None:
    """Make RNNLM.forward (the training entry the Trainer calls) misbehave on the
    `at_step`-th training call (eval calls not counted)."""
    original = RNNLM.forward
    calls = {"n": 0}

    def forward(self, batch, carry=None):
        if not self.training:
            return original(self, batch, carry)
        calls["n"] += 1
        res = original(self, batch, carry)
        return action(res) if calls["n"] == at_step else res

    monkeypatch.setattr(RNNLM, "forward", forward)


def test_nan_loss_raises_and_keeps_last(tmp_path, corpus8, monkeypatch):
    train, valid = corpus8
    ref = tmp_path / "ref"
    train_lm(make_cfg(train, valid, eval_every=2, max_steps=2), out=ref)

    def nan(res):
        res.loss_sum = res.loss_sum * float("nan")
        return res

    with monkeypatch.context() as m:
        _patch_loss(m, 3, nan)
        with pytest.raises(TrainingError) as exc:
            train_lm(make_cfg(train, valid, eval_every=2), out=tmp_path / "run")
    assert "nan" in exc.value.message and "step 3" in exc.value.message
    assert "train.lr" in exc.value.hint
    assert state(tmp_path / "run")["global_step"] == 2
    assert_same_weights(ref, tmp_path / "run")  # last/ is the good step-2 state
    # and it resumes from there
    assert resume(tmp_path / "run", "train.max_steps=4")["steps"] == 4


def test_ctrl_c_saves_last_and_resumes_exactly(tmp_path, corpus8, monkeypatch):
    train, valid = corpus8
    train_lm(make_cfg(train, valid, max_steps=12), out=tmp_path / "one")

    def interrupt(res):  # Ctrl-C mid-step: after the forward pass, before the update
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        _patch_loss(m, 4, interrupt)
        with pytest.raises(Interrupted) as exc:
            train_lm(make_cfg(train, valid, max_steps=12), out=tmp_path / "two")
    assert "--resume" in exc.value.hint and exc.value.exit_code == 130
    assert state(tmp_path / "two")["global_step"] == 3
    assert resume(tmp_path / "two")["steps"] == 12
    assert_same_weights(tmp_path / "one", tmp_path / "two")


def test_resume_with_other_architecture_is_refused(tmp_path, corpus8):
    train, valid = corpus8
    train_lm(make_cfg(train, valid, max_steps=2), out=tmp_path / "run")
    with pytest.raises(TrainingError) as exc:
        resume_config(tmp_path / "run", ("model.hidden=64",))
    assert "hidden" in exc.value.message
    with pytest.raises(TrainingError, match="cell"):
        resume_config(tmp_path / "run", ("model.cell=gru",))
    # non-architecture overrides are fine
    assert resume_config(tmp_path / "run", ("train.lr=0.001",)).train.lr == 0.001
    with pytest.raises(TrainingError, match="no resumable"):
        resume_config(tmp_path / "nothing")


def test_new_run_refuses_existing_run_folder(tmp_path, corpus8):
    train, valid = corpus8
    train_lm(make_cfg(train, valid, max_steps=1), out=tmp_path / "run")
    with pytest.raises(TrainingError, match="already holds a run"):
        train_lm(make_cfg(train, valid, max_steps=1), out=tmp_path / "run")


def test_metrics_jsonl_one_line_per_evaluation(tmp_path, corpus8):
    train, valid = corpus8
    run = tmp_path / "run"
    summary = train_lm(make_cfg(train, valid, epochs=2, eval_every=3), out=run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6, 9, 12, 15]
    assert records == state(run)["history"]
    for r in records:
        assert r["valid_ppl"] == pytest.approx(math.exp(r["valid_loss"]))
    assert summary["best"] == min(r["valid_ppl"] for r in records)
    assert records[-1]["valid_loss"] < records[0]["valid_loss"]  # it learns the pattern
    best_meta = json.loads((run / "best" / "config.json").read_text())
    assert best_meta["metrics"]["valid_ppl"] == summary["best"]


def test_early_stopping_with_patience(tmp_path, corpus8, monkeypatch):
    scores = iter([3.0, 2.0, 2.5, 2.1, 2.0, 1.0])  # best at the 2nd eval, then 3 bad ones

    def scripted(model, batches, device, precision="fp32"):
        loss = next(scores)
        return {"loss": loss, "ppl": math.exp(loss), "tokens": 10}

    monkeypatch.setattr(seqtool.training, "evaluate_loss", scripted)
    train, valid = corpus8
    run = tmp_path / "run"
    summary = train_lm(make_cfg(train, valid, epochs=10, eval_every=2, patience=3,
                                schedule="constant"), out=run)
    assert summary["stop_reason"] == "early stopping"
    assert summary["steps"] == 10  # evals at 2, 4 (best), 6, 8, 10 -> 3 without improvement
    assert summary["best"] == pytest.approx(math.exp(2.0))
    st = state(run)
    assert st["done"] and st["best_step"] == 4 and st["bad_evals"] == 3
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 5
    # a finished run resumes to nothing more
    assert resume(run)["steps"] == 10


def test_plateau_decays_lr(tmp_path, corpus8, monkeypatch):
    scores = iter([2.0, 2.5, 2.6, 1.0])

    def scripted(model, batches, device, precision="fp32"):
        loss = next(scores)
        return {"loss": loss, "ppl": math.exp(loss), "tokens": 10}

    monkeypatch.setattr(seqtool.training, "evaluate_loss", scripted)
    train, valid = corpus8
    run = tmp_path / "run"
    train_lm(make_cfg(train, valid, eval_every=2, max_steps=8, schedule="plateau",
                      lr_decay=0.5), out=run)
    # each record holds the lr used up to that evaluation; a bad one halves it
    assert [r["lr"] for r in state(run)["history"]] == [1e-2, 1e-2, 5e-3, 2.5e-3]
    assert state(run)["lr"] == 2.5e-3


def test_ctrl_c_in_the_cli_exits_130_and_names_last(tmp_path, corpus8, monkeypatch):
    """Ctrl-C during `seqtool train lm`: exit code 130 (as a shell reports SIGINT), one
    error line saying where last/ was written, a hint with the resume command."""
    from cli_runner import run_cli

    train, valid = corpus8

    def interrupt(res):
        raise KeyboardInterrupt

    _patch_loss(monkeypatch, 2, interrupt)
    res = run_cli("train", "lm", "--train-file", train, "--valid-file", valid, "--config",
                  "lm-tiny", "--out", tmp_path / "run")
    assert res.code == 130, (res.code, res.err)
    assert "Traceback" not in res.err
    errors = [ln for ln in res.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"{tmp_path / 'run'}/last" in errors[0], res.err
    assert "--resume" in res.err
    assert (tmp_path / "run" / "last" / "config.json").is_file()
