"""Peak memory of `seqtool translate` streaming a large file from stdin to stdout.

The issue's target: translating 100,000 lines from stdin keeps peak memory
(resident set size) under 1 GB. The input cycles through the source side of
Multi30k's training set (29,000 sentences) until it has --lines lines; the
command is the one a user runs:

    seqtool translate --model MODEL --beam B < input > output

The child's peak RSS comes from getrusage(RUSAGE_CHILDREN) after it exits; the
script also checks that exactly one output line came back per input line.

Usage (repository root, project venv):
  .venv/bin/python bench/translate_memory.py [--model checkpoints/translate-de-en]
      [--lines 100000] [--beam 1] [--precision auto|fp32|bf16] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "multi30k"


def source_lines() -> list[str]:
    path = CORPUS / "train.de.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "checkpoints" / "translate-de-en"))
    p.add_argument("--lines", type=int, default=100_000)
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--quick", action="store_true", help="2,000 lines")
    a = p.parse_args()
    if a.quick:
        a.lines = 2_000
    exe = Path(sys.executable).with_name("seqtool")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.de", Path(tmp) / "out.en"
        src.write_text("".join(s + "\n" for s in islice(cycle(source_lines()), a.lines)),
                       "utf-8")
        t0 = time.perf_counter()
        with open(src, "rb") as fin, open(out, "wb") as fout:
            proc = subprocess.run([str(exe), "translate", "--model", a.model, "--beam",
                                   str(a.beam), "--precision", a.precision, "--device", "cpu"],
                                  stdin=fin, stdout=fout,
                                  stderr=subprocess.PIPE,
                                  env={"OMP_NUM_THREADS": str(a.threads), "PATH": "/usr/bin:/bin"})
        wall = time.perf_counter() - t0
        if proc.returncode:
            sys.exit(f"seqtool translate failed: {proc.stderr.decode()[-2000:]}")
        n_out = sum(1 for _ in open(out, "rb"))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res = {"model": a.model, "lines": a.lines, "beam": a.beam, "threads": a.threads,
           "precision": a.precision,
           "output_lines": n_out, "one_line_per_line": n_out == a.lines,
           "peak_rss_mb": round(peak_mb, 1), "wall_s": round(wall, 1),
           "lines_per_s": round(a.lines / wall, 1)}
    print(json.dumps(res, indent=1))
    print(f"| {a.lines:,} lines, beam {a.beam} | peak RSS {peak_mb:,.0f} MB | "
          f"{a.lines / wall:,.1f} lines/s | output lines {n_out:,} |")
    name = f"translate_memory{'_quick' if a.quick else ''}_beam{a.beam}_{a.precision}.json"
    (ROOT / "bench" / "results" / name).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
