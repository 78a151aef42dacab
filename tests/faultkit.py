"""Helpers for the fault and bad-input suites (tests/test_faults.py,
tests/test_bad_input.py, bench/faults.py): tiny data for each model kind, the
`seqtool train ...` arguments of a tiny run, a training in a subprocess that can
be killed or interrupted, and the files that tamper with a checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

WORDS = ("the cat sat on mat a dog ran to red ball sun is hot we like green tea my old car "
         "slow").split()
KEYS = ("red", "blue", "green", "gold")
KINDS = ("lm", "translate", "chat")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return path


def make_data(folder: Path, n: int = 120, seed: int = 0) -> dict[str, Path]:
    """Training and validation files for all three kinds (word level, tiny vocabulary)."""
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))

    lm = [sentence() for _ in range(n)]
    src = [sentence() for _ in range(n)]
    tgt = [" ".join(reversed(s.split())) for s in src]  # translate = reverse the words
    dialogues = []
    for _ in range(n):
        k = rng.choice(KEYS)
        turns = ["hello there", f"my colour is {k}", rng.choice(("ok", "sure")), f"you said {k}"]
        dialogues.append(" __eou__ ".join(turns) + " __eou__")
    f = folder
    return {"lm_train": write_lines(f / "lm_train.txt", lm),
            "lm_valid": write_lines(f / "lm_valid.txt", lm[: n // 5]),
            "src_train": write_lines(f / "train.src", src),
            "tgt_train": write_lines(f / "train.tgt", tgt),
            "src_valid": write_lines(f / "valid.src", src[: n // 5]),
            "tgt_valid": write_lines(f / "valid.tgt", tgt[: n // 5]),
            "chat_train": write_lines(f / "chat_train.txt", dialogues),
            "chat_valid": write_lines(f / "chat_valid.txt", dialogues[: n // 5])}


TINY_SETS = {
    "lm": ["--config", "lm-tiny", "--set", "model.emb_dim=8", "--set", "model.hidden=8",
           "--set", "train.batch_size=4", "--set", "train.bptt=6"],
    "translate": ["--config", "translate-tiny", "--set", "model.emb_dim=8", "--set",
                  "model.enc_hidden=8", "--set", "model.dec_hidden=16", "--set",
                  "train.batch_size=8", "--set", "search.max_len=12"],
    "chat": ["--config", "chat-tiny", "--set", "model.emb_dim=8", "--set", "model.enc_hidden=8",
             "--set", "model.ctx_hidden=8", "--set", "model.dec_hidden=8", "--set",
             "train.batch_size=8"],
}


def train_args(kind: str, data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """`train KIND ...` for a tiny run of `kind` into `out` (extra: more --set flags)."""
    if kind == "lm":
        files = ["--train-file", data["lm_train"], "--valid-file", data["lm_valid"]]
    elif kind == "translate":
        files = ["--train-src", data["src_train"], "--train-tgt", data["tgt_train"],
                 "--valid-src", data["src_valid"], "--valid-tgt", data["tgt_valid"]]
    else:
        files = ["--train-file", data["chat_train"], "--valid-file", data["chat_valid"]]
    return ["train", kind, *map(str, files), *TINY_SETS[kind], "--device", "cpu",
            "--set", "train.log_every=1", *extra, "--out", str(out)]


def env(home: Path) -> dict[str, str]:
    e = {**os.environ, "SEQTOOL_HOME": str(home), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    e.pop("SEQTOOL_DEBUG", None)
    return e


def start(args: list[str], home: Path, **kw: object) -> subprocess.Popen[str]:
    """`python -m seqtool ARGS` started in the background (stdout/stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "seqtool", *args], env=env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)  # type: ignore[call-overload]


def steps_logged(run: Path) -> int:
    """The last step train.jsonl reports (0 before the first)."""
    log = run / "train.jsonl"
    try:
        lines = log.read_text("utf-8").splitlines()
    except OSError:
        return 0
    import json

    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return 0


def wait_for_step(proc: subprocess.Popen[str], run: Path, step: int, timeout: float = 60
                  ) -> bool:
    """Wait until the run has logged `step` (True), or the process ended (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if steps_logged(run) >= step:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def interrupt(proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 60
              ) -> tuple[int, str, str]:
    """Send `sig`, wait; (exit code, stdout, stderr)."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def pickle_bomb(marker: Path) -> bytes:
    """A torch.save file whose unpickling creates `marker` (what seqtool must never load)."""
    import io

    import torch

    class Bomb:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save({"weight": Bomb()}, buf)
    return buf.getvalue()
