"""Start-up latency of the CLI: wall time of whole processes, median of N runs.

  seqtool --help                        target: < 0.3 s
  python -c "import torch"              the yardstick
  seqtool predict "some of them looks like" [--model PATH]
                                        target: < 1.5x `import torch`

Each command runs once untimed first (so every timed run sees warm file
caches), then --repeats times. `seqtool` is the executable next to
sys.executable (the venv's console script).

    .venv/bin/python bench/startup.py [--quick] [--model PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

HELP_TARGET_S = 0.3
PREDICT_RATIO_TARGET = 1.5
DEFAULT_TEXT = "some of them looks like"


@dataclass
class Timing:
    name: str
    command: str
    ok: bool
    returncode: int
    median_s: float | None
    min_s: float | None
    times_s: list[float]
    error: str = ""


def seqtool_exe() -> Path:
    return Path(sys.executable).parent / "seqtool"


def time_command(name: str, cmd: list[str], repeats: int, warmup: bool, timeout: float
                 ) -> Timing:
    """Median wall time of `cmd` over `repeats` runs; stops at the first failure."""
    times: list[float] = []
    for i in range(repeats + int(warmup)):
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return Timing(name, shlex.join(cmd), False, -1, None, None, times,
                          f"timed out after {timeout:.0f} s")
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return Timing(name, shlex.join(cmd), False, proc.returncode, None, None, times,
                          "\n".join(tail))
        if i >= int(warmup):
            times.append(dt)
    return Timing(name, shlex.join(cmd), True, 0, statistics.median(times), min(times), times)


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 runs, no warm-up run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per command")
    ap.add_argument("--model", type=Path, default=None,
                    help="checkpoint for `seqtool predict` (default: the shipped model)")
    ap.add_argument("--text", default=DEFAULT_TEXT, help="prompt for `seqtool predict`")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per process")
    args = ap.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    warmup = not args.quick

    exe = str(seqtool_exe())
    predict_cmd = [exe, "predict", args.text]
    if args.model is not None:
        predict_cmd += ["--model", str(args.model)]
    commands = {
        "seqtool --help": [exe, "--help"],
        "import torch": [sys.executable, "-c", "import torch"],
        "seqtool predict": predict_cmd,
    }
    timings = {name: time_command(name, cmd, repeats, warmup, args.timeout)
               for name, cmd in commands.items()}

    help_t = timings["seqtool --help"]
    torch_t = timings["import torch"]
    pred_t = timings["seqtool predict"]
    ratio = (pred_t.median_s / torch_t.median_s
             if pred_t.median_s is not None and torch_t.median_s else None)
    help_ok = help_t.median_s is not None and help_t.median_s < HELP_TARGET_S
    predict_ok = ratio is not None and ratio < PREDICT_RATIO_TARGET

    def target(name: str) -> str:
        if name == "seqtool --help":
            return f"< {HELP_TARGET_S} s: {'PASS' if help_ok else 'FAIL'}"
        if name == "seqtool predict":
            verdict = "n/a" if ratio is None else "PASS" if predict_ok else "FAIL"
            return f"< {PREDICT_RATIO_TARGET}x import torch: {verdict}"
        return ""

    print(f"## Start-up time (median of {repeats}{', quick' if args.quick else ''})\n")
    rows = [[name, fmt(t.median_s, 3) if t.ok else f"failed (rc {t.returncode})",
             fmt(t.min_s, 3) if t.ok else "", target(name)] for name, t in timings.items()]
    print(markdown_table(["command", "median s", "min s", "target"], rows, "lrrl"))
    print(f"\npredict / import torch: {f'{ratio:.2f}x' if ratio is not None else 'n/a'}")
    for t in timings.values():
        if not t.ok:
            print(f"\n`{t.command}` failed:\n" + "\n".join("    " + ln
                                                          for ln in t.error.splitlines()))
    payload: dict[str, object] = {
        "machine": machine_info(), "quick": args.quick, "repeats": repeats,
        "timings": {k: asdict(v) for k, v in timings.items()},
        "predict_over_import_torch": ratio,
        "targets": {"help_s": HELP_TARGET_S, "predict_ratio": PREDICT_RATIO_TARGET,
                    "help_pass": help_ok, "predict_pass": predict_ok},
    }
    path = write_result("startup" + ("_quick" if args.quick else ""), payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
