"""The fault suite: trainings killed (kill -9, also during a checkpoint write),
interrupted (SIGINT, SIGTERM) and resumed bitwise, a full disk, a read-only --out,
two trainings on one --out, a swap cut short between its two renames. Each case
runs the real entry point in a subprocess; bench/faults.py repeats the kill -9
case 20 times and runs the long streams."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_runner import Result, assert_user_error, run_cli
from faultkit import KINDS, make_data, start, steps_logged, train_args, wait_for_step
from safetensors.torch import load_file

from seqtool.checkpoint import load_checkpoint

STEPS = 60  # every run here stops at this step; the signals arrive around step 5
LONG = ("--set", "train.epochs=100", "--set", f"train.max_steps={STEPS}")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data) -> dict[str, Path]:
    """Each kind trained for STEPS steps without a stop (in this process)."""
    root = tmp_path_factory.mktemp("straight")
    for kind in KINDS:
        res = run_cli(*train_args(kind, data, root / kind, *LONG), "--json")
        assert res.code == 0, res.err
        assert json.loads(res.out)["steps"] == STEPS
    return {kind: root / kind for kind in KINDS}


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def assert_bitwise_equal(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs after resume"


def one_error(err: str) -> list[str]:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_then_resume_equals_uninterrupted(kind, sig, tmp_path, data, straight):
    run = tmp_path / "run"
    proc = start(train_args(kind, data, run, *LONG), tmp_path / "home")
    assert wait_for_step(proc, run, 5), proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    # exit 130 (not 2), one error line naming where last/ was written, a resume hint
    assert proc.returncode == 130, err
    (line,) = one_error(err)
    assert f"saved {run}/last" in line and "--resume" in err
    stopped = json.loads((run / "last" / "trainer_state.json").read_text())["global_step"]
    assert 5 <= stopped < STEPS
    res = run_cli("train", kind, "--resume", run, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["steps"] == STEPS
    assert_bitwise_equal(run, straight[kind])


def test_kill_9_during_checkpoint_writes_then_resume(tmp_path, data):
    """kill -9 at random moments of a run that writes best/ and last/ after every
    step (so most kills land in a write): both always load, --resume finishes."""
    rng = random.Random(0)
    run = tmp_path / "run"
    args = train_args("lm", data, run, *LONG, "--set", "train.eval_every=1", "--set",
                      "train.patience=0")  # an evaluation per step: no early stop
    for _ in range(3):
        before = steps_logged(run)
        proc = start(args if not (run / "last").exists() else
                     ["train", "lm", "--resume", str(run)], tmp_path / "home")
        assert wait_for_step(proc, run, before + 1), proc.communicate()  # it goes on
        time.sleep(rng.uniform(0, 0.3))
        proc.kill()
        proc.communicate()
        for sub in ("best", "last"):
            if (run / sub).exists() or any(run.glob(f".{sub}.*")):
                assert load_checkpoint(run / sub).model is not None
    res = run_cli("train", "lm", "--resume", run, "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["steps"] == STEPS
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_swap_cut_between_its_renames_is_recovered(tmp_path, straight):
    """The moment of atomic_folder_write where last/ has been moved away and the new
    one is not yet in place (what kill -9 there leaves): load and resume finish it."""
    run = tmp_path / "run"
    shutil.copytree(straight["lm"], run)
    dead = 2**22 + 12345  # a pid no process has
    os.replace(run / "last", run / f".last.old-{dead}")
    shutil.copytree(run / f".last.old-{dead}", run / f".last.tmp-{dead}")
    (run / f".best.tmp-{dead + 1}").mkdir()  # a half-written best/: dropped
    assert load_checkpoint(run).config.task == "lm"  # the run folder: best/ and last/
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["best", "last"]
    # and with only the old one left (killed just after the first rename)
    os.replace(run / "last", run / f".last.old-{dead}")
    res = run_cli("train", "lm", "--resume", run, "--set", "train.max_steps=61", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["steps"] == 61


def test_second_training_on_the_same_out_refuses(tmp_path, data):
    run = tmp_path / "run"
    first = start(train_args("lm", data, run, *LONG), tmp_path / "home")
    assert wait_for_step(first, run, 1), first.communicate()
    second = run_cli(*train_args("lm", data, run, *LONG))
    resumed = run_cli("train", "lm", "--resume", run)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    for res in (second, resumed):
        assert_user_error(res, "being trained by another process", f"pid {first.pid}")
    # nothing corrupted: the first run is complete and loads
    assert json.loads((run / "last" / "trainer_state.json").read_text())["global_step"] == STEPS
    assert load_checkpoint(run).config.task == "lm"
    # once it finished, a new run there is refused as before, a resume works
    assert_user_error(run_cli(*train_args("lm", data, run)), "already holds a run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_folder(tmp_path, data):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = run_cli(*train_args("lm", data, ro / "run"))
    finally:
        ro.chmod(0o755)
    assert_user_error(res, "cannot write to", "Permission denied")


def test_read_only_file_system_out(tmp_path, data):
    """--out on a read-only mount (a bind mount in a private mount namespace; skips
    where unshare cannot make one)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    script = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && exec "
              + shlex.join([sys.executable, "-m", "seqtool",
                          *train_args("lm", data, ro / "run")]))
    res = _in_namespace(script, tmp_path)
    assert_user_error(res, "cannot write to", "Read-only file system")
    assert not any(ro.iterdir())


def _in_namespace(script: str, tmp_path: Path) -> Result:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a private mount")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode:
        pytest.skip(f"unshare -rm is not allowed here: {probe.stderr.decode()[:80]}")
    env = {**os.environ, "SEQTOOL_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True,
                       text=True, timeout=300, check=False)
    return Result(p.returncode, p.stdout, p.stderr)


def test_disk_full_during_a_checkpoint_write(tmp_path, data, straight):
    """The run resumed on a small tmpfs (private mount namespace) with a few KiB
    free: one error line, exit 2, and the previous last/ intact and loadable."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    size = sum(f.stat().st_size for f in straight["lm"].rglob("*") if f.is_file())
    resume = [sys.executable, "-m", "seqtool", "train", "lm", "--resume", f"{mnt}/run",
              "--set", "train.max_steps=200", "--set", "train.log_every=1000"]
    check = [sys.executable, "-c", "import sys; from seqtool.checkpoint import load_checkpoint; "
             "load_checkpoint(sys.argv[1]); print('loads')", f"{mnt}/run/last"]
    script = (f"mount -t tmpfs -o size={size * 3 // 1024 + 64}k tmpfs {mnt} && "
              f"cp -a {straight['lm']} {mnt}/run && "
              f"(cat /dev/zero > {mnt}/fill 2>/dev/null; truncate -s -12K {mnt}/fill) && "
              f"cp {mnt}/run/last/model.safetensors {mnt}/before && "
              f"{shlex.join(resume)}; echo rc=$? && "
              f"cmp {mnt}/before {mnt}/run/last/model.safetensors && echo same && "
              f"{shlex.join(check)}")
    res = _in_namespace(script, tmp_path)
    assert "rc=2" in res.out, (res.out, res.err)
    (line,) = one_error(res.err)
    assert "disk is full" in line and "previous checkpoint is intact" in line
    assert "same" in res.out and "loads" in res.out, (res.out, res.err)
