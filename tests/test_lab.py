"""`seqtool lab`: the NumPy binary-addition RNN (BPTT == numerical gradient, the
course's observations by the stated criteria, clipping), the outcome classifier,
the cells comparison, and bad input through the command line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqtool.commands.lab import VARIANTS, binary_addition, cells, variant_name
from seqtool.errors import DataError, InputError
from seqtool.lab import binary_addition as ba
from seqtool.lab.curves import (
    CONVERGED_LOSS,
    GRAD_LIMIT,
    OSCILLATION_STD,
    OUTCOMES,
    TAIL,
    TREND_DROP,
    classify,
)

ROOT = Path(__file__).resolve().parent.parent


def run_seqtool(*args: str | Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEQTOOL_HOME": str(home), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    env.pop("SEQTOOL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "seqtool", *map(str, args)], env=env,
                           capture_output=True, text=True, timeout=300, cwd=ROOT)


def strict_json(text: str) -> dict:
    """json.loads that refuses NaN/Infinity, which are not JSON."""
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def assert_one_error(p: subprocess.CompletedProcess, *words: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines[0].startswith("error:") and sum(x.startswith("error:") for x in lines) == 1
    assert any(x.startswith("hint:") for x in lines), p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert p.stdout == ""


# --------------------------------------------------------------------------- the NumPy RNN
@pytest.mark.parametrize("activation", ba.ACTIVATIONS)
def test_bptt_gradient_equals_numerical_gradient_for_every_weight(activation):
    rng = np.random.default_rng(7)
    p = ba.init_params(5, "xavier", rng)
    p["b_h"] = rng.uniform(0.1, 0.5, 5)  # nonzero biases, relu pre-activations away from 0
    p["b_y"] = rng.standard_normal(1)
    act = ba.ACTIVATION[activation]
    x, y = ba.make_batch(np.array([37, 100, 5]), np.array([90, 27, 3]))  # (8, 3, 2), (8, 3, 1)
    hs, zs = ba.forward(p, x, act)
    grads = ba.backward(p, x, y, hs, zs, act)
    assert set(grads) == set(ba.WEIGHTS) == set(p)
    eps = 1e-6
    for name in ba.WEIGHTS:
        numeric = np.zeros_like(p[name])
        for i in np.ndindex(p[name].shape):
            old = p[name][i]
            p[name][i] = old + eps
            up = ba.loss_fn(ba.forward(p, x, act)[1], y)
            p[name][i] = old - eps
            down = ba.loss_fn(ba.forward(p, x, act)[1], y)
            p[name][i] = old
            numeric[i] = (up - down) / (2 * eps)
        assert np.abs(numeric).max() > 1e-4, name  # the check is not vacuous
        err = np.abs(numeric - grads[name]).max() / np.abs(numeric).max()
        assert err < 1e-6, (activation, name, err)


def test_bits_round_trip_and_targets_are_the_sums():
    a, b = np.array([0, 1, 127, 64, 99]), np.array([0, 127, 127, 63, 5])
    assert (ba.from_bits(ba.to_bits(a + b)) == a + b).all()
    x, y = ba.make_batch(a, b)
    assert x.shape == (8, 5, 2) and y.shape == (8, 5, 1)
    assert (ba.from_bits(y[:, :, 0]) == a + b).all()
    assert (ba.from_bits(x[:, :, 0]) == a).all() and (ba.from_bits(x[:, :, 1]) == b).all()


def test_held_out_pairs_are_never_trained_on():
    pool, test = ba.split_pairs(seed=3, test_size=1000)
    assert len(test) == 1000 and len(set(pool) | set(test)) == 128 * 128
    assert not set(pool) & set(test)


def test_base_variant_converges_with_its_default_seed():
    """The course's first observation, with the exact defaults of --compare."""
    result = binary_addition()  # sigmoid, N(0,1), lr 0.1, hidden 16, 10,000 steps, seed 0
    (v,) = result["variants"]
    assert v["name"] == "base"
    assert v["outcome"] == "converged", v
    assert v["final_loss"] < CONVERGED_LOSS
    assert 0 < v["steps_to_converge"] <= 10_000
    assert all(x < CONVERGED_LOSS for x in v["losses"][v["steps_to_converge"] // 100 - 1:])
    assert v["accuracy"] >= 0.99


def test_relu_explodes_without_clipping_and_clipping_tames_it():
    plain = binary_addition(activation="relu", steps=300)["variants"][0]
    assert plain["outcome"] == "diverged"
    assert plain["max_grad_norm"] is None or plain["max_grad_norm"] > GRAD_LIMIT
    clipped = binary_addition(activation="relu", steps=3000, clip=1.0)["variants"][0]
    assert clipped["name"] == "relu"
    assert clipped["outcome"] != "diverged", clipped
    assert all(v is not None for v in clipped["losses"])
    assert clipped["losses"][-1] < clipped["losses"][0] / 2  # and it learns


def test_variant_names_come_from_the_changes():
    assert variant_name("sigmoid", "normal", 0.1) == "base"
    assert [variant_name(**{**{"activation": "sigmoid", "init": "normal", "lr": 0.1}, **c})
            for c in VARIANTS.values()] == list(VARIANTS)
    assert variant_name("relu", "he", 0.05) == "relu, he, lr=0.05"


# --------------------------------------------------------------------------- the criteria
def test_outcome_classifier_on_synthetic_curves():
    rng = np.random.default_rng(0)
    steps = np.arange(100)
    decaying = 5.5 * np.exp(-steps / 10)
    v = classify(list(decaying), 20.0, True, 100)
    first = int(np.argmax(decaying < CONVERGED_LOSS))
    assert v.outcome == "converged" and v.steps_to_converge == (first + 1) * 100

    flat = 5.5 + 0.01 * rng.standard_normal(100)
    assert classify(list(flat), 5.0, True, 100).outcome == "not converged"
    falling = np.linspace(5.5, 1.0, 100)  # still falling: not oscillating, not converged
    assert classify(list(falling), 5.0, True, 100).outcome == "not converged"
    noisy = 7.0 + 2.0 * OSCILLATION_STD * 7.0 * np.sin(steps) + np.linspace(0, 0.3, 100)
    v = classify(list(noisy), 300.0, True, 100)
    assert v.outcome == "oscillating" and v.tail_rel_std > OSCILLATION_STD
    assert v.tail_drop < TREND_DROP

    with_nan = list(decaying[:50]) + [math.nan]
    assert classify(with_nan, 1.0, False, 100).outcome == "diverged"
    assert classify(list(decaying), GRAD_LIMIT * 10, True, 100).outcome == "diverged"
    assert classify(list(decaying), math.inf, True, 100).outcome == "diverged"
    back_up = list(decaying) + [1.0]  # below the line, then above it at the end
    assert classify(back_up, 20.0, True, 100).outcome != "converged"
    dip = [1.0, 0.05, 0.5, 0.05, 0.04]  # steps_to_converge counts from the last crossing
    assert classify(dip, 20.0, True, 10).steps_to_converge == 40


def test_help_states_the_criteria_with_the_thresholds_in_use(tmp_path):
    p = run_seqtool("lab", "binary-addition", "--help", home=tmp_path)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    assert GRAD_LIMIT == 1e6 and "exceeded 1e6" in text
    assert f"below {CONVERGED_LOSS:g}" in text
    assert f"last {TAIL:.0%} of the curve" in text
    assert f"above {OSCILLATION_STD:.0%} of its mean" in text
    assert f"less than {TREND_DROP:.0%} of the mean" in text
    for outcome in OUTCOMES:
        assert outcome in text


# --------------------------------------------------------------------------- command line
def test_compare_json_schema(tmp_path):
    p = run_seqtool("lab", "binary-addition", "--compare", "--steps", "300", "--json",
                    home=tmp_path)
    assert p.returncode == 0, p.stderr
    out = strict_json(p.stdout)
    assert [v["name"] for v in out["variants"]] == ["base", "lr=0.01", "xavier", "relu", "tanh"]
    assert out["settings"] == {"hidden": 16, "steps": 300, "seed": 0, "clip": 0.0,
                               "window": 100}
    for v in out["variants"]:
        assert v["outcome"] in OUTCOMES
        assert v["final_loss"] is None or isinstance(v["final_loss"], float)
        assert v["steps_to_converge"] is None or isinstance(v["steps_to_converge"], int)
        assert 0.0 <= v["accuracy"] <= 1.0
        assert 1 <= len(v["losses"]) <= 3
        assert (v["steps_to_converge"] is not None) == (v["outcome"] == "converged")
    relu = out["variants"][3]
    assert relu["outcome"] == "diverged"


def test_plot_path_that_cannot_be_written_is_one_error(tmp_path):
    p = run_seqtool("lab", "binary-addition", "--compare", "--plot",
                    tmp_path / "no" / "such" / "dir" / "losses.png", home=tmp_path)
    assert_one_error(p, "cannot write the plot")
    p = run_seqtool("lab", "binary-addition", "--compare", "--plot", tmp_path, home=tmp_path)
    assert_one_error(p, "cannot write the plot", "folder")


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(InputError) as exc:
        binary_addition(compare=True, steps=10, plot=tmp_path / "x.png")
    assert "matplotlib" in exc.value.message and "seqtool[plot]" in exc.value.hint
    assert not (tmp_path / "x.png").exists()


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "losses.png"
    result = binary_addition(compare=True, steps=200, plot=out)
    assert result["plot"] == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_single_run_flags(tmp_path):
    p = run_seqtool("lab", "binary-addition", "--compare", "--activation", "relu",
                    home=tmp_path)
    assert_one_error(p, "--compare", "--activation")


# --------------------------------------------------------------------------- cells
def hand_count(cell: str, d: int, h: int, layers: int) -> int:
    """Per layer: gates x (input weights + recurrent weights + torch's two bias vectors);
    the peephole LSTM has one bias vector and three peephole vectors instead."""
    total = 0
    for layer in range(layers):
        inp = d if layer == 0 else h
        gates = {"rnn": 1, "gru": 3, "lstm": 4, "peephole": 4}[cell]
        biases = 1 if cell == "peephole" else 2
        total += gates * (h * inp + h * h + biases * h) + (3 * h if cell == "peephole" else 0)
    return total


def tiny_ptb(folder: Path) -> Path:
    folder.mkdir()
    words = "the cat sat on the mat and the dog ran to the red ball".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(words[i: i + 6]) for i in rng.integers(0, 8, 400)]
    (folder / "ptb.train.txt").write_text("\n".join(lines[:360]) + "\n")
    (folder / "ptb.valid.txt").write_text("\n".join(lines[360:]) + "\n")
    return folder


def test_cells_json_counts_speed_and_perplexity(tmp_path):
    data = tiny_ptb(tmp_path / "ptb")
    p = run_seqtool("lab", "cells", "--hidden", "8", "--layers", "2", "--batch-size", "4",
                    "--bptt", "6", "--seconds", "0.5", "--corpus-dir", data, "--json",
                    home=tmp_path)
    assert p.returncode == 0, p.stderr
    out = strict_json(p.stdout)
    rows = {r["name"]: r for r in out["cells"]}
    assert list(rows) == ["rnn", "lstm", "peephole", "gru"]
    for name, r in rows.items():
        assert r["recurrent_parameters"] == hand_count(name, 8, 8, 2), name
        assert r["tokens_per_s"] > 0 and r["train_steps"] >= 1
        assert 1.0 < r["valid_ppl"] < out["vocab_size"], r  # better than uniform
    assert rows["gru"]["recurrent_parameters"] < rows["lstm"]["recurrent_parameters"]
    assert (rows["lstm"]["recurrent_parameters"] - rows["gru"]["recurrent_parameters"]
            == 2 * (8 * 8 + 8 * 8 + 2 * 8))  # one gate block per layer
    assert rows["peephole"]["recurrent_parameters"] == (
        rows["lstm"]["recurrent_parameters"] - 2 * 8)  # -4H bias +3H peepholes, per layer


def test_cells_without_training_needs_no_corpus():
    out = cells(hidden=4, batch_size=2, bptt=3, seconds=0, vocab=30)
    assert out["corpus"] is None and out["vocab_size"] == 30
    assert all("valid_ppl" not in r and r["tokens_per_s"] > 0 for r in out["cells"])


def test_cells_bad_corpus_input(tmp_path):
    with pytest.raises(DataError, match="not imported"):
        cells(hidden=4, seconds=1)  # empty SEQTOOL_HOME: no ptb
    (tmp_path / "ptb.train.txt").write_text("a b c\n")
    p = run_seqtool("lab", "cells", "--hidden", "4", "--seconds", "1", "--corpus-dir",
                    tmp_path, home=tmp_path)
    assert_one_error(p, "ptb.valid.txt")


@pytest.mark.corpus
def test_cells_on_penn_treebank(corpora_dir, tmp_path):
    ptb = corpora_dir / "ptb"
    if not (ptb / "ptb.train.txt").is_file():
        pytest.skip(f"no ptb.train.txt in {ptb}")
    out = cells(hidden=16, batch_size=10, bptt=20, seconds=1, corpus_dir=ptb,
                valid_tokens=2000)
    assert 9_900 < out["vocab_size"] < 10_100  # Mikolov's PTB: a 10k-word vocabulary
    for r in out["cells"]:
        assert math.isfinite(r["valid_ppl"]) and r["valid_ppl"] < out["vocab_size"], r


def test_lab_is_light_to_import():
    code = ("import sys, seqtool.commands.lab; "
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "[]", (p.stdout, p.stderr)


def test_json_has_no_nan_even_when_a_run_blows_up(tmp_path):
    p = run_seqtool("lab", "binary-addition", "--activation", "relu", "--seed", "1",
                    "--steps", "50", "--json", home=tmp_path)
    assert p.returncode == 0, p.stderr
    v = strict_json(p.stdout)["variants"][0]
    assert v["outcome"] == "diverged" and v["stopped_at"] is not None
    assert v["final_loss"] is None and v["losses"][-1] is None  # NaN/inf become null


# --------------------------------------------------------------------------- gradients
def test_tanh_rnn_gradient_vanishes_geometrically_where_the_lstm_does_not():
    """At initialisation, the gradient of a loss at step T reaching T - k: the tanh
    RNN's shrinks by a constant factor per step (a straight line on a log scale),
    the LSTM's with its forget gate near 1 (bias 3: f ~ 0.95) is carried back by the
    cell state. Swapping the cells, or dropping the forget bias, fails this."""
    from seqtool.lab.gradients import GradientsConfig, compare

    cfg = GradientsConfig(hidden=16, steps=60, batch_size=8, train_steps=0, forget_bias=3.0)
    rows = {r["cell"]: r["init"] for r in compare(cfg, ("rnn_tanh", "lstm"))}
    tanh, lstm = rows["rnn_tanh"], rows["lstm"]
    assert tanh["r2"] > 0.98 and tanh["factor"] < 0.8, tanh
    assert tanh["relative"]["50"] < 1e-8, tanh["relative"]
    assert lstm["relative"]["50"] > 1e-3 and lstm["factor"] > 0.9, lstm
    # the forget-gate path is what carries it: the cell state's own gradient
    dc = lstm["dc"]
    assert dc[50] / dc[0] > 1e-2


def test_lstm_with_the_usual_forget_bias_still_keeps_far_more_than_tanh():
    """Forget bias 1 (f ~ 0.73): the LSTM's gradient decays too, but more slowly; at
    50 steps back it keeps orders of magnitude more than the tanh RNN's."""
    from seqtool.lab.gradients import GradientsConfig, compare

    cfg = GradientsConfig(hidden=16, steps=60, batch_size=8, train_steps=0, forget_bias=1.0)
    rows = {r["cell"]: r["init"] for r in compare(cfg, ("rnn_tanh", "lstm", "gru"))}
    assert rows["lstm"]["factor"] > rows["gru"]["factor"] > rows["rnn_tanh"]["factor"]
    assert rows["lstm"]["relative"]["50"] > 1e4 * rows["rnn_tanh"]["relative"]["50"]


def test_gradient_profile_is_autograd_of_the_last_step_loss():
    """dh[0] is dL/dh_T itself: the read-out's gradient, computed here by hand."""
    import torch
    from torch.nn import functional as F

    from seqtool.lab.gradients import CellModel, GradientsConfig, gradient_profile, task_batch

    cfg = GradientsConfig(hidden=8, steps=5, batch_size=4, symbols=3)
    torch.manual_seed(0)
    model = CellModel("gru", cfg)
    x, y = task_batch(cfg, torch.Generator().manual_seed(1))
    prof = gradient_profile(model, x, y)
    logits, hs, _ = model.unroll(x)
    probs = F.softmax(logits, -1).detach()
    by_hand = (probs - F.one_hot(y, cfg.symbols)) @ model.readout.weight.detach() / len(y)
    assert len(prof["dh"]) == 5
    assert math.isclose(prof["dh"][0], float(by_hand.double().norm()), rel_tol=1e-4)


def test_lab_gradients_json_and_bad_flags(tmp_path):
    p = run_seqtool("lab", "gradients", "--hidden", "8", "--steps", "12", "--train-steps", "2",
                    "--batch-size", "4", "--json", home=tmp_path)
    assert p.returncode == 0, p.stderr
    out = strict_json(p.stdout)
    assert [r["cell"] for r in out["cells"]] == ["rnn_tanh", "rnn_relu", "lstm", "gru"]
    for r in out["cells"]:
        assert len(r["init"]["dh"]) == 12 and len(r["trained"]["dh"]) == 12
        assert set(r["init"]["relative"]) == {"10"}
        assert 0.0 <= r["trained"]["accuracy"] <= 1.0
    assert "dc" in out["cells"][2]["init"] and "dc" not in out["cells"][0]["init"]
    assert_one_error(run_seqtool("lab", "gradients", "--steps", "1", home=tmp_path), "--steps")
    assert_one_error(run_seqtool("lab", "gradients", "--steps", "8", "--plot", tmp_path,
                                 home=tmp_path), "cannot write the plot", "folder")


def test_lab_gradients_help_names_the_bound_and_the_forget_gate(tmp_path):
    p = run_seqtool("lab", "gradients", "--help", home=tmp_path)
    text = " ".join(p.stdout.split())
    assert "at most 0.25" in text and "dc_t/dc_(t-1) = f_t" in text and "CEC" in text
