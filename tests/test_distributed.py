"""Data-parallel training (seqtool/distributed.py, the Trainer under torchrun): two
gloo processes on the CPU, started by the test with the variables torchrun sets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddp_worker import LM_BATCH, tiny_lm, tiny_translation, trainer
from seqtool.data.buckets import bucket_batches
from seqtool.distributed import SINGLE, contiguous_slice, deal, per_rank_batch
from seqtool.errors import ConfigError
from test_training import assert_same_weights, state, write_corpus

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ranks(cmd: list[str], home: Path, world: int = 2) -> list[subprocess.Popen]:
    """`world` processes of `cmd` with RANK, WORLD_SIZE, MASTER_ADDR/PORT (torchrun's)."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "SEQTOOL_HOME": str(home), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
        env.pop("SEQTOOL_DEBUG", None)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def run_ranks(cmd: list[str], home: Path, world: int = 2) -> list[tuple[int, str, str]]:
    return finish(start_ranks(cmd, home, world))


def seqtool_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "seqtool", *map(str, args)]


# --------------------------------------------------------------------------- sharding
def test_deal_gives_every_rank_the_same_count_and_drops_only_the_tail():
    items = list(range(11))
    shards = [deal(items, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(9))  # each once; the last 11 % 3 = 2 dropped
    assert [s[1] for s in shards] == [3, 4, 5]  # step 1 runs items 3, 4, 5


def test_translation_shards_of_an_epoch_cover_the_data_once():
    _, data = tiny_translation()
    shards = [data.shard(r, 2) for r in range(2)]
    assert shards[0].batch_size == shards[1].batch_size == 3
    steps = {s.steps_per_epoch() for s in shards}
    batches = bucket_batches(data._lengths, 3, data.seed, 1, data.pool_batches)
    assert len(batches) == 17 and steps == {8}  # an uneven tail: 1 batch dropped
    seen: list[tuple] = []
    for shard in shards:
        got = list(shard.train_batches(1))
        assert len(got) == 8
        seen += [tuple(map(tuple, b["src"].t().tolist())) for b in got]
    pad = data.pad
    want = [tuple(map(tuple, pad([data.train[i] for i in b])["src"].t().tolist()))
            for b in batches[:16]]
    assert sorted(seen) == sorted(want)  # exactly the first 16 batches, none twice
    examples = [ex for b in batches[:16] for ex in b]
    assert len(examples) == len(set(examples)) == 50 - len(batches[16])
    # another epoch is another shuffle, dealt the same way on every rank
    assert [b["src"].tolist() for b in shards[0].train_batches(2)] != \
        [b["src"].tolist() for b in shards[0].train_batches(1)]


def test_lm_shards_are_the_columns_of_one_process_with_the_global_batch():
    _, data = tiny_lm()
    parts = [data.shard(r, 2) for r in range(2)]
    assert [p.batch_size for p in parts] == [LM_BATCH // 2] * 2
    assert torch.equal(torch.cat([p._train for p in parts], dim=1), data._train)
    assert {p.steps_per_epoch() for p in parts} == {data.steps_per_epoch()}
    assert contiguous_slice(403, 1, 2, 4) == slice(200, 400)


def test_a_world_that_does_not_divide_the_batch_is_refused():
    assert per_rank_batch(32, 4) == 8
    with pytest.raises(ConfigError) as exc:
        per_rank_batch(6, 4)
    assert "train.batch_size=4" in exc.value.hint and "8" in exc.value.hint


# --------------------------------------------------------------------------- gradients
def one_process_reference(tmp_path: Path, task: str) -> tuple[torch.nn.Module, float, int]:
    """The model after one step of 1 process on the global batch: for the LM its first
    window at batch LM_BATCH, for translation the two batches the ranks ran at step 0
    as one batch."""
    if task == "lm":
        model, data = tiny_lm()
        batch = next(iter(data.train_batches(0)))
    else:
        model, data = tiny_translation()
        first_two = bucket_batches(data._lengths, 3, data.seed, 0, data.pool_batches)[:2]
        batch = data.pad([data.train[i] for b in first_two for i in b])
    loss, tokens = trainer(model, data, SINGLE, tmp_path, [])._train_step([batch])
    return model, loss, tokens


def assert_same_gradients(got: dict[str, torch.Tensor], model: torch.nn.Module,
                          rtol: float = 1e-5, atol: float = 1e-7) -> None:
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(got[name], p.grad, rtol=rtol, atol=atol), name
    assert any(float(g.abs().max()) > 1e-3 for g in got.values())  # not all zero


@pytest.mark.parametrize("task", ["lm", "translate"])
def test_two_ranks_give_the_gradients_of_one_process_with_both_batches(tmp_path, task):
    """2 ranks x batch B, one step == 1 process x 2B, to fp32 tolerance."""
    [(code, _, err), (code1, _, err1)] = run_ranks(
        [sys.executable, str(WORKER), "grads", task, str(tmp_path)], tmp_path)
    assert code == code1 == 0, err + err1
    model, loss, tokens = one_process_reference(tmp_path, task)
    ran = json.loads((tmp_path / "loss.json").read_text())
    assert ran["tokens"] == tokens and ran["loss"] == pytest.approx(loss, rel=1e-6)
    assert_same_gradients(load_file(str(tmp_path / "grads.safetensors")), model)


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices (nccl: one "
                    "GPU per rank)")
def test_two_gpus_with_nccl_give_the_gradients_of_one_process(tmp_path):
    res = run_ranks([sys.executable, str(WORKER), "grads", "translate", str(tmp_path), "cuda"],
                    tmp_path)
    assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    model, _, _ = one_process_reference(tmp_path, "translate")  # on the CPU
    assert_same_gradients(load_file(str(tmp_path / "grads.safetensors")), model, 1e-3, 1e-5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")])])
def test_accumulating_two_batches_gives_the_gradients_of_both_in_one(tmp_path, device):
    """accum_steps 2 in one process: the loss per token over both batches, not the mean
    of the two batches' means."""
    model, data = tiny_translation()
    batches = bucket_batches(data._lengths, 3, data.seed, 0, data.pool_batches)[:2]
    ref, loss, tokens = one_process_reference(tmp_path, "translate")
    t = trainer(model, data, SINGLE, tmp_path, [], device, accum_steps=2)
    loss2, tokens2 = t._train_step([data.pad([data.train[i] for i in b]) for b in batches])
    assert tokens2 == tokens and loss2 == pytest.approx(loss, rel=1e-5)
    got = {n: p.grad.cpu() for n, p in model.named_parameters() if p.grad is not None}
    assert_same_gradients(got, ref, 1e-4 if device == "cuda" else 1e-5)


def test_accumulation_all_reduces_once_per_optimizer_step_and_only_rank0_writes(tmp_path):
    results = run_ranks([sys.executable, str(WORKER), "accum", str(tmp_path)], tmp_path)
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    # 2 optimizer steps of 2 batches: 2 gradient all-reduces (a tiny model is one bucket)
    assert r0["steps"] == r1["steps"] == 2
    assert r0["allreduces"] == r1["allreduces"] == 2
    assert r0["saves"] == ["best", "last"] and "metrics.jsonl" in r0["files"]
    assert r1["saves"] == [] and r1["files"] == []


# --------------------------------------------------------------------------- the CLI
def lm_args(train: Path, valid: Path, out: Path, *sets: str) -> list[str]:
    args = ["train", "lm", "--train-file", str(train), "--valid-file", str(valid),
            "--config", "lm-tiny", "--out", str(out), "--json"]
    for s in ("train.batch_size=4", "train.bptt=5", "train.log_every=1", "model.layers=2",
              "model.dropout=0.3", "train.eval_every=4", *sets):
        args += ["--set", s]
    return args


@pytest.mark.slow
def test_resumed_two_rank_training_equals_uninterrupted_bitwise(tmp_path):
    """2-layer LSTM with dropout: each rank's RNG and recurrent state survive in last/."""
    train, valid = write_corpus(tmp_path, 12)
    one, two = tmp_path / "one", tmp_path / "two"
    for out, steps in ((one, 10), (two, 5)):
        res = run_ranks(seqtool_cmd(*lm_args(train, valid, out, "train.epochs=2",
                                             f"train.max_steps={steps}")), tmp_path)
        assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    assert state(two)["step_in_epoch"] == 5 and state(two)["world_size"] == 2
    res = run_ranks(seqtool_cmd("train", "lm", "--resume", two, "--json",
                                "--set", "train.max_steps=10"), tmp_path)
    assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    assert json.loads(res[0][1])["steps"] == 10 and res[1][1] == ""  # rank 0 alone prints
    assert_same_weights(one, two)
    lines = (two / "train.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == list(range(1, 11))  # written once


@pytest.mark.slow
def test_resume_with_another_world_size_is_refused(tmp_path):
    train, valid = write_corpus(tmp_path, 6)
    run = tmp_path / "run"
    res = run_ranks(seqtool_cmd(*lm_args(train, valid, run, "train.epochs=1",
                                         "train.max_steps=2")), tmp_path)
    assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    from cli_runner import assert_user_error, run_subprocess

    res1 = run_subprocess("train", "lm", "--resume", run, home=tmp_path)
    assert_user_error(res1, "2 process", "--nproc 2")


def test_batch_that_does_not_divide_is_one_error_line(tmp_path):
    train, valid = write_corpus(tmp_path, 6)
    res = run_ranks(seqtool_cmd(*lm_args(train, valid, tmp_path / "r", "train.batch_size=5")),
                    tmp_path)
    assert [r[0] for r in res] == [2, 2]
    errors = [ln for _, _, err in res for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "does not divide among 2" in errors[0]
    assert "Traceback" not in res[0][2] + res[1][2]


def wait_for_steps(run: Path, steps: int, procs: list[subprocess.Popen], limit: float = 60
                   ) -> None:
    log = run / "train.jsonl"
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if log.exists() and len(log.read_text().splitlines()) >= steps:
            return
        assert all(p.poll() is None for p in procs), finish(procs)
        time.sleep(0.05)
    raise AssertionError("training did not start")


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_after_the_same_step_and_resumes(tmp_path):
    train, valid = write_corpus(tmp_path, 40)
    one, two = tmp_path / "one", tmp_path / "two"
    res = run_ranks(seqtool_cmd(*lm_args(train, valid, one, "train.epochs=3")), tmp_path)
    assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    procs = start_ranks(seqtool_cmd(*lm_args(train, valid, two, "train.epochs=3")), tmp_path)
    wait_for_steps(two, 3, procs)
    procs[1].send_signal(signal.SIGTERM)  # rank 1 only: rank 0 learns it in the all-reduce
    (code0, _, err0), (code1, _, err1) = finish(procs, 60)
    assert (code0, code1) == (130, 130), err0 + err1
    assert "error: interrupted at step" in err0 and "--resume" in err0
    assert err1.count("error:") == 0 and "Traceback" not in err0 + err1
    stopped = state(two)["global_step"]
    assert 3 <= stopped < 120
    res = run_ranks(seqtool_cmd("train", "lm", "--resume", two, "--json"), tmp_path)
    assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    assert_same_weights(one, two)


def test_a_killed_rank_ends_the_others_with_an_error_line(tmp_path):
    train, valid = write_corpus(tmp_path, 40)
    run = tmp_path / "run"
    procs = start_ranks(seqtool_cmd(*lm_args(train, valid, run, "train.epochs=1000",
                                             "train.dist_timeout=20")), tmp_path)
    wait_for_steps(run, 3, procs)
    procs[1].kill()
    start = time.monotonic()
    out, err = procs[0].communicate(timeout=60)
    procs[1].communicate()
    assert time.monotonic() - start < 20
    assert procs[0].returncode == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "lost the other processes" in errors[0], err
    assert "hint:" in err and "Traceback" not in err


def test_a_hung_rank_ends_the_others_after_the_timeout(tmp_path):
    """A rank that stops answering (SIGSTOP: alive, its connections open) ends rank 0
    after train.dist_timeout, not never."""
    train, valid = write_corpus(tmp_path, 40)
    run = tmp_path / "run"
    procs = start_ranks(seqtool_cmd(*lm_args(train, valid, run, "train.epochs=1000",
                                             "train.dist_timeout=5")), tmp_path)
    wait_for_steps(run, 3, procs)
    procs[1].send_signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        _, err = procs[0].communicate(timeout=60)
        took = time.monotonic() - start
    finally:
        procs[1].send_signal(signal.SIGCONT)
        procs[1].kill()
        procs[1].communicate()
    assert procs[0].returncode == 2 and took < 30, (took, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "within train.dist_timeout = 5 s" in errors[0], err


@pytest.mark.slow
def test_nproc_runs_torchrun_and_rank0_alone_prints(tmp_path):
    train, valid = write_corpus(tmp_path, 6)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    p = subprocess.run(seqtool_cmd(*lm_args(train, valid, tmp_path / "run", "train.epochs=1"),
                                   "--nproc", "2"), env={**env, "SEQTOOL_HOME": str(tmp_path)},
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert sum(ln.startswith("{") for ln in lines) == 1  # one summary: rank 0's


def test_translation_with_an_uneven_last_batch_trains_two_epochs_without_hanging(tmp_path):
    """22 pairs in batches of 2 per rank: 11 batches, 5 steps per rank per epoch (one
    batch dropped); rank 0 validates (greedy BLEU) while rank 1 waits."""
    from seqtool.data.toy import chars, date_pairs

    files = []
    for name, n, seed in (("train", 22, 1), ("valid", 6, 2)):
        pairs = [(chars(s), chars(t)) for s, t in date_pairs(n, seed=seed)]
        for side, lines in (("src", [s for s, _ in pairs]), ("tgt", [t for _, t in pairs])):
            path = tmp_path / f"{name}.{side}"
            path.write_text("".join(ln + "\n" for ln in lines), "utf-8")
            files.append(path)
    run = tmp_path / "run"
    res = run_ranks(seqtool_cmd(
        "train", "translate", "--train-src", files[0], "--train-tgt", files[1], "--valid-src",
        files[2], "--valid-tgt", files[3], "--config", "translate-tiny", "--out", run,
        "--json", "--set", "train.batch_size=4", "--set", "train.epochs=2",
        "--set", "train.log_every=1", "--set", "train.dist_timeout=60"), tmp_path)
    assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    summary = json.loads(res[0][1])
    assert summary["steps"] == 10 and summary["stop_reason"] == "finished"
    evals = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [5, 10] and "valid_bleu" in evals[0]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["seq2seq", "hred", "vhred"])
def test_every_chat_model_trains_with_two_ranks(tmp_path, arch):
    """Every parameter gets a gradient in each step (DDP refuses a model that leaves one
    out), with word dropout and VHRED's sampling drawing per rank."""
    import random

    rng = random.Random(1)
    lines = []
    for _ in range(40):
        k = rng.choice(("red", "blue", "green", "gold"))
        turns = ["hello there", f"my colour is {k}", rng.choice(("ok", "sure")), f"you said {k}"]
        lines.append(" __eou__ ".join(turns) + " __eou__")
    (tmp_path / "d.txt").write_text("\n".join(lines) + "\n", "utf-8")
    res = run_ranks(seqtool_cmd(
        "train", "chat", "--train-file", tmp_path / "d.txt", "--valid-file", tmp_path / "d.txt",
        "--config", "chat-tiny", "--set", f"model.arch={arch}", "--set", "train.epochs=2",
        "--out", tmp_path / "run", "--json"), tmp_path)
    assert [r[0] for r in res] == [0, 0], [r[2] for r in res]
    assert json.loads(res[0][1])["stop_reason"] == "finished"


def test_accum_steps_counts_optimizer_steps_and_may_not_change_mid_epoch(tmp_path):
    from seqtool.commands.train import train_lm
    from seqtool.errors import TrainingError
    from seqtool.runs import resume_config
    from test_training import make_cfg

    train, valid = write_corpus(tmp_path, 8)  # 8 batches per epoch
    done = train_lm(make_cfg(train, valid, epochs=1, accum_steps=2), out=tmp_path / "a")
    assert done["steps"] == 4 and done["tokens_seen"] == 8 * 4 * 5
    train_lm(make_cfg(train, valid, epochs=2, max_steps=3), out=tmp_path / "b")
    with pytest.raises(TrainingError, match="accum_steps changed from 1 to 2"):
        train_lm(resume_config(tmp_path / "b", ("train.accum_steps=2",)), resume=tmp_path / "b")
