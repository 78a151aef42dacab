"""Shared by the server's (and the Python API's) tests: tiny models they train
themselves (an LM, a date translator with attention, a VHRED chat model), and
`seqtool serve` as a process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import seqtool
from seqtool.data.toy import chars, date_pairs

SENTENCES = ["the cat sat on the mat", "a dog ran to the red ball", "the sun is hot",
             "we like green tea", "my old car is slow"]
KEYS = ("red", "blue", "green", "gold")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return path


def train_date_translator(root: Path, out: Path) -> Path:
    """The translate-tiny preset trained into `out` on free-form dates -> ISO dates,
    character by character (seqtool.data.toy; the files go into `root`)."""
    files = {}
    for name, n, seed in (("train", 320, 1), ("valid", 24, 2)):
        pairs = [(chars(s), chars(t)) for s, t in date_pairs(n, seed=seed)]
        files[f"{name}_src"] = write_lines(root / f"{name}.src", [s for s, _ in pairs])
        files[f"{name}_tgt"] = write_lines(root / f"{name}.tgt", [t for _, t in pairs])
    seqtool.train("translate-tiny", out=out, data=files, device="cpu")
    return out


def train_tiny(root: Path) -> dict[str, Path]:
    """A tiny LM, date translator (with attention) and VHRED chat model."""
    lines = [SENTENCES[i % len(SENTENCES)] for i in range(60)]
    seqtool.train("lm-tiny", out=root / "lm", device="cpu",
                  data={"train_file": write_lines(root / "lm.txt", lines),
                        "valid_file": write_lines(root / "lm-valid.txt", lines[3:23])},
                  model={"emb_dim": 16, "hidden": 16},
                  train={"epochs": 4, "batch_size": 4, "bptt": 8, "lr": 0.02})
    train_date_translator(root, root / "mt")
    rng = random.Random(1)
    dialogues = []
    for _ in range(200):
        k = rng.choice(KEYS)
        dialogues.append(" __eou__ ".join(["hello there", f"my colour is {k}", "ok",
                                           f"you said {k}"]) + " __eou__")
    seqtool.train("chat-tiny", out=root / "chat", device="cpu", model={"arch": "vhred"},
                  data={"train_file": write_lines(root / "chat.txt", dialogues),
                        "valid_file": write_lines(root / "chat-valid.txt", dialogues[:20])})
    return {"lm": root / "lm", "mt": root / "mt", "chat": root / "chat"}



def sources(n: int, seed: int = 3) -> list[str]:
    """Date-translation source sentences (the tiny translator's kind of input)."""
    return [chars(s) for s, _ in date_pairs(n, seed=seed)]


def start_server(*args: str | Path) -> subprocess.Popen:
    """`seqtool serve --port 0 --json ARGS` as a process (its stdout is a pipe)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "seqtool", "serve", "--port", "0", "--json",
                             *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def ready_line(p: subprocess.Popen) -> dict:
    """The {"url", "models"} line a --json server prints once it listens."""
    line = p.stdout.readline() if p.stdout is not None else ""
    if not line:
        raise AssertionError("the server did not start: " + (p.stderr.read() if p.stderr
                                                            else ""))
    return json.loads(line)
