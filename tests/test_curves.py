"""A run's history (train.jsonl, metrics.jsonl, TensorBoard events), `seqtool plot`,
and the validation sparkline of `seqtool info`."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from cli_runner import assert_user_error, run_cli
from test_training import _patch_loss, make_cfg, resume, write_corpus

from seqtool.commands.train import train_lm
from seqtool.console.runs import sparkline
from seqtool.errors import TrainingError
from seqtool.history import read_history, read_records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny language-model runs (LSTM and GRU), 16 steps, evaluated every 4."""
    root = tmp_path_factory.mktemp("curves")
    train, valid = write_corpus(root, 8)
    out = {}
    for cell in ("lstm", "gru"):
        cfg = make_cfg(train, valid, epochs=2, eval_every=4)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, cell=cell))
        train_lm(cfg, out=root / cell)
        out[cell] = root / cell
    return out


def test_training_writes_a_line_per_report_and_tokens_per_evaluation(runs):
    run = runs["lstm"]
    train = lines(run / "train.jsonl")
    evals = lines(run / "metrics.jsonl")
    assert [r["step"] for r in train] == list(range(1, 17))  # log_every = 1
    tokens = [r["tokens"] for r in train]
    assert tokens == sorted(tokens) and tokens[0] > 0 and len(set(tokens)) == 16
    assert all(r["loss"] > 0 and r["lr"] > 0 for r in train)
    by_step = {r["step"]: r["tokens"] for r in train}
    assert [r["step"] for r in evals] == [4, 8, 12, 16]
    assert [r["tokens"] for r in evals] == [by_step[s] for s in (4, 8, 12, 16)]


def test_reading_keeps_the_records_a_resumed_run_wrote_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [(3, 5.0), (6, 4.0), (9, 3.0), (6, 4.5), (9, 3.5), (12, 2.5)]  # crashed after 9,
    path.write_text("".join(json.dumps({"step": s, "valid_loss": v}) + "\n"  # resumed from 3
                            for s, v in rows))
    assert [(r["step"], r["valid_loss"]) for r in read_records(path)] == [
        (3, 5.0), (6, 4.5), (9, 3.5), (12, 2.5)]


def test_read_history_accepts_a_checkpoint_folder_of_the_run(runs):
    assert read_history(runs["lstm"] / "best").run == runs["lstm"]


def test_plot_two_runs_writes_a_png(runs, tmp_path):
    pytest.importorskip("matplotlib", reason="the plotting extra is not installed")
    out = tmp_path / "curves.png"
    res = run_cli("plot", runs["lstm"], runs["gru"], "--out", out, "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert [r["name"] for r in result["runs"]] == ["lstm", "gru"]
    assert result["panels"] == ["loss", "perplexity", "learning rate"]  # no BLEU for an LM
    assert result["runs"][0]["evaluations"] == 4 and result["runs"][0]["train_points"] == 16
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 20_000
    text = run_cli("plot", runs["lstm"], runs["gru"], "--x", "tokens", "--out", out)
    assert text.code == 0, text.err
    assert "lstm" in text.out and "gru" in text.out and "against tokens" in text.out


def test_plot_draws_bleu_for_translation_runs(tmp_path):
    pytest.importorskip("matplotlib", reason="the plotting extra is not installed")
    run = tmp_path / "m30k"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "tokens": 100 * s, "lr": 1e-3, "valid_loss": 4 - s / 10,
                    "valid_ppl": 50 - s, "valid_bleu": 10 + s}) + "\n" for s in (1, 2, 3)))
    res = run_cli("plot", run, "--out", tmp_path / "c.png", "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert result["panels"] == ["loss", "perplexity", "BLEU", "learning rate"]
    assert result["runs"][0]["best_valid_bleu"] == {"value": 13, "step": 3}


def test_plot_bad_runs_give_one_error_line(tmp_path, runs):
    pytest.importorskip("matplotlib", reason="the plotting extra is not installed")
    out = tmp_path / "c.png"
    assert_user_error(run_cli("plot", tmp_path / "nope", "--out", out), "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(run_cli("plot", empty, "--out", out), "no metrics.jsonl")
    (empty / "metrics.jsonl").write_text("")
    assert_user_error(run_cli("plot", runs["lstm"], empty, "--out", out), "is empty")
    (empty / "metrics.jsonl").write_text('{"step": 1, "valid_loss": 2}\n{"step": \n')
    assert_user_error(run_cli("plot", empty, "--out", out), "line 2")
    (empty / "metrics.jsonl").write_text('{"step": 1, "valid_loss": 2}\n')  # an older run
    assert_user_error(run_cli("plot", empty, "--x", "tokens", "--out", out), "token counts")
    assert_user_error(run_cli("plot", runs["lstm"], "--out", tmp_path), "is a folder")
    assert not out.exists()


def test_plot_without_matplotlib_names_the_extra(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert_user_error(run_cli("plot", runs["lstm"], "--out", tmp_path / "c.png"),
                      "matplotlib", "seqtool[plot]")


def test_sparkline():
    assert sparkline([8, 7, 6, 5, 4, 3, 2, 1]) == "█▇▆▅▄▃▂▁"
    assert sparkline([1.0, 1.0, 1.0]) == "▄▄▄"
    assert sparkline([1, float("nan"), 3]) == "▁█"
    assert sparkline([]) == ""
    long = sparkline(list(range(100)), width=10)
    assert len(long) == 10 and long[0] == "▁" and long[-1] == "█"
    assert list(long) == sorted(long)


def test_info_shows_the_runs_validation_curve(runs):
    run = runs["lstm"]
    losses = [r["valid_loss"] for r in lines(run / "metrics.jsonl")]
    info = json.loads(run_cli("info", run, "--json").out)
    assert info["history"]["steps"] == [4, 8, 12, 16]
    assert info["history"]["valid_loss"] == losses
    text = run_cli("info", run / "last").out
    assert "validation loss" in text and sparkline(losses) in text
    assert "4 evaluations" in text and "seqtool plot" in text


def test_info_without_matplotlib_says_how_to_get_the_figure(runs, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    text = run_cli("info", runs["gru"]).out
    assert "validation loss" in text and "pip install 'seqtool[plot]'" in text


def test_info_of_a_checkpoint_outside_a_run_has_no_curve(runs, tmp_path):
    run_cli("export", runs["lstm"] / "best", tmp_path / "shipped")
    info = json.loads(run_cli("info", tmp_path / "shipped", "--json").out)
    assert info["history"] is None


# --- TensorBoard -------------------------------------------------------------------


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_events_hold_the_metrics(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    train, valid = write_corpus(tmp_path, 8)
    run = tmp_path / "run"
    train_lm(make_cfg(train, valid, epochs=1, eval_every=4, tensorboard=True), out=run)
    evals = lines(run / "metrics.jsonl")
    got = scalars(run / "tensorboard", "valid/loss")
    assert [s for s, _ in got] == [r["step"] for r in evals] == [4, 8]
    assert [v for _, v in got] == pytest.approx([r["valid_loss"] for r in evals], rel=1e-6)
    assert [s for s, _ in scalars(run / "tensorboard", "valid/ppl")] == [4, 8]
    train_log = lines(run / "train.jsonl")
    loss = scalars(run / "tensorboard", "train/loss")
    assert [v for _, v in loss] == pytest.approx([r["loss"] for r in train_log], rel=1e-6)
    assert [s for s, _ in scalars(run / "tensorboard", "train/lr")] == list(range(1, 9))


def test_tensorboard_after_a_crash_and_resume_has_each_step_once(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    train, valid = write_corpus(tmp_path, 8)
    run = tmp_path / "run"

    def nan(res):
        res.loss_sum = res.loss_sum * float("nan")
        return res

    with monkeypatch.context() as m:  # steps 5 and 6 are logged, last/ is at step 4
        _patch_loss(m, 7, nan)
        with pytest.raises(TrainingError):
            train_lm(make_cfg(train, valid, epochs=1, eval_every=4, tensorboard=True), out=run)
    resume(run)
    steps = [s for s, _ in scalars(run / "tensorboard", "train/loss")]
    assert steps == list(range(1, 9))
    assert [r["step"] for r in read_history(run).train] == list(range(1, 9))


def test_tensorboard_missing_fails_before_training(tmp_path, monkeypatch):
    train, valid = write_corpus(tmp_path, 8)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails
    res = run_cli("train", "lm", "--train-file", train, "--valid-file", valid, "--config",
                  "lm-tiny", "--set", "train.tensorboard=true", "--out", tmp_path / "run")
    assert_user_error(res, "tensorboard", "pip install 'seqtool[tensorboard]'")
    assert not (tmp_path / "run").exists()
