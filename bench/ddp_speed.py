"""Training tokens/s of 1 process x 2 threads vs 2 data-parallel processes x 1 thread
(torchrun, gloo) on this machine, through the real CLI on real corpora.

Both runs train the same model on the same global batch for the same number of
steps (train.batch_size is the total of all processes), so the figure is
throughput at equal work; the last training loss and the validation figure at
the end are printed beside it to show that the two runs learn the same thing.

    lm         the lm-ptb preset (2x650 tied LSTM, adaptive softmax, bf16), PTB
    translate  the translate-multi30k-peer preset (bi-GRU 128 / GRU 256, Bahdanau), Multi30k de-en

tokens/s is the steady state from RUN/train.jsonl: the tokens between the first
and the last progress report over the seconds between them (the first
--log-every steps, which include start-up, are left out). The machine is shared,
so the two setups alternate for --rounds rounds (A B, B A, A B, ...) and the
table gives each setup's median and the ratio of the medians.

    .venv/bin/python bench/ddp_speed.py [--steps 60] [--rounds 3] [--tasks lm|translate]

(on a shared machine under a lock, so that no two benchmarks overlap:
`flock ../../bench.lock .venv/bin/python bench/ddp_speed.py ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

ROOT = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("SEQTOOL_CORPORA") or ROOT.parent / "shared" / "corpora")
TASKS = {
    "lm": (["train", "lm", "--config", "lm-ptb"], "ptb", "valid_ppl"),
    "translate": (["train", "translate", "--config", "translate-multi30k-peer"], "multi30k",
                  "valid_bleu"),
}
SETUPS = {"1 process x 2 threads": ["--threads", "2"],
          "2 processes x 1 thread": ["--nproc", "2", "--threads", "1"]}


def seqtool(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqtool", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=900)


def steady_tokens_per_s(run: Path) -> float:
    reports = [json.loads(ln) for ln in (run / "train.jsonl").read_text().splitlines()]
    first, last = reports[0], reports[-1]
    return (last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"])


def run_one(task: str, setup: str, steps: int, log_every: int, home: Path,
            env: dict[str, str], round_: int) -> dict[str, Any]:
    args, _, metric = TASKS[task]
    out = home / f"{task}-{setup.split()[0]}-{round_}"
    sets = [f"train.max_steps={steps}", "train.max_minutes=0", "train.epochs=1",
            "train.eval_every=0", f"train.log_every={log_every}"]
    cmd = [*args, "--out", str(out), "--json", *SETUPS[setup]]
    for s in sets:
        cmd += ["--set", s]
    p = seqtool(cmd, env)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    reports = [json.loads(ln) for ln in (out / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    return {"task": task, "setup": setup, "round": round_, "steps": summary["steps"],
            "tokens_per_s": steady_tokens_per_s(out), "last_train_loss": reports[-1]["loss"],
            metric: evals[-1][metric], "command": "seqtool " + " ".join(
                a if "/" not in a else "RUN" for a in cmd)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", default="lm")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {**os.environ, "SEQTOOL_HOME": str(home), "NO_COLOR": "1"}
        env.pop("OMP_NUM_THREADS", None)  # torchrun sets 1 per process; --threads says it
        rows, results = [], []
        for task in a.tasks.split(","):
            corpus = TASKS[task][1]
            p = seqtool(["corpus", "import", corpus, "--from", str(CORPORA / corpus)], env)
            if p.returncode != 0:
                raise SystemExit(p.stderr)
            runs = []
            for i in range(a.rounds):
                order = list(SETUPS) if i % 2 == 0 else list(SETUPS)[::-1]
                runs += [run_one(task, s, a.steps, a.log_every, home, env, i) for s in order]
            results += runs
            metric = TASKS[task][2]
            medians = {s: statistics.median(r["tokens_per_s"] for r in runs if r["setup"] == s)
                       for s in SETUPS}
            base = medians[next(iter(SETUPS))]
            for s, median in medians.items():
                mine = [r for r in runs if r["setup"] == s]
                rows.append([task, s, mine[-1]["steps"],
                             ", ".join(fmt(r["tokens_per_s"], 0) for r in mine),
                             fmt(median, 0), fmt(median / base),
                             fmt(mine[-1]["last_train_loss"], 4),
                             f"{metric} {mine[-1][metric]:.2f}"])
    table = markdown_table(["task", "setup", "steps", "tokens/s of each round",
                            "median", "vs 1 x 2", "train loss", "validation"], rows)
    print(table)
    path = write_result(f"ddp_speed_{a.tasks.replace(',', '_')}",
                        {"machine": machine_info(), "results": results, "table": table})
    print(f"\nwritten {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
