"""Many prompts at once (issue 16, item 3): 1,000 prompts from stdin in one
`seqtool predict` call vs separate `seqtool predict PROMPT` calls, and, inside one
process with the model loaded once, batched (predict_batch, generate_batch) vs
one prompt at a time (predict_next, generate_text). Every output is compared
with its one-at-a-time twin.

Prompts are the first 2-10 words of sentences of WikiText-2 test (--corpus-dir),
the shipped LM answers them (--model for another). Separate calls each pay the
process start and the model load, so only --calls of them are timed (default 50)
and the per-call median is multiplied up to the number of prompts.

    .venv/bin/python bench/batch_prompts.py [--quick] [--prompts 1000] [--calls 50]
        [--corpus-dir ../shared/corpora/wikitext-2] [--model PATH] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

ROOT = Path(__file__).resolve().parent.parent


def make_prompts(corpus_dir: Path, n: int) -> list[str]:
    """The first 2..10 words (cycling) of the first `n` sentences of test.txt with
    enough words, headings skipped."""
    out: list[str] = []
    for line in (corpus_dir / "test.txt").read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("="):
            continue
        for sentence in line.split(" . "):
            words = sentence.split()
            k = 2 + len(out) % 9
            if len(words) > k:
                out.append(" ".join(words[:k]))
                if len(out) == n:
                    return out
    return out


def seqtool_exe() -> str:
    return str(Path(sys.executable).parent / "seqtool")


def run(cmd: list[str], stdin: str | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False,
                       stdin=None if stdin is not None else subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed: {p.stderr.strip()[-500:]}")
    return dt, p.stdout


def in_process(prompts: list[str], model: Path | None, gen_prompts: int, max_tokens: int,
               batch_size: int) -> dict[str, Any]:
    """Batched vs one at a time with the model loaded once; outputs compared."""
    from seqtool.commands.predict import (generate_batch, generate_text, predict_batch,
                                          predict_next)
    from seqtool.config import SamplingConfig
    from seqtool.loading import load_lm

    loaded = load_lm(model, "cpu")
    res: dict[str, Any] = {"batch_size": batch_size}
    t0 = time.perf_counter()
    batched = predict_batch(loaded, prompts, batch_size=batch_size)
    res["predict_batched_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [predict_next(loaded, text=p) for p in prompts]
    res["predict_one_at_a_time_s"] = time.perf_counter() - t0
    res["predict_identical"] = sum(a == b for a, b in zip(batched, alone, strict=True))
    res["predict_same_prediction"] = sum(a["prediction"] == b["prediction"]
                                         for a, b in zip(batched, alone, strict=True))
    res["predict_max_abs_prob_diff"] = max(
        abs(x["probability"] - y["probability"]) for a, b in zip(batched, alone, strict=True)
        for x, y in zip(a["candidates"], b["candidates"], strict=True))

    some = prompts[:gen_prompts]
    s = SamplingConfig(max_tokens=max_tokens, temperature=0.8, top_p=0.9)
    t0 = time.perf_counter()
    gb = generate_batch(loaded, some, sampling=s, seed=1, batch_size=batch_size)
    res["generate_batched_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ga = [generate_text(loaded, text=p, sampling=s, seed=1) for p in some]
    res["generate_one_at_a_time_s"] = time.perf_counter() - t0
    res["generate_prompts"] = len(some)
    res["generate_max_tokens"] = max_tokens
    res["generate_identical_samples"] = sum(a["samples"] == b["samples"]
                                            for a, b in zip(gb, ga, strict=True))
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 40 prompts, 3 calls")
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=50, help="separate processes timed")
    ap.add_argument("--gen-prompts", type=int, default=200,
                    help="prompts for the in-process generate comparison")
    ap.add_argument("--max-tokens", type=int, default=20, help="generate: tokens per prompt")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--corpus-dir", type=Path, default=ROOT.parent / "shared" / "corpora"
                    / "wikitext-2")
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped LM")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (every process)")
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.calls, args.gen_prompts = 40, 3, 20

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the subprocesses too
    import torch

    torch.set_num_threads(args.threads)
    prompts = make_prompts(args.corpus_dir, args.prompts)
    assert len(prompts) == args.prompts, len(prompts)
    model = ["--model", str(args.model)] if args.model else []
    exe = seqtool_exe()
    stdin = "".join(p + "\n" for p in prompts)

    run([exe, "predict", prompts[0], *model])  # warm the file cache
    one_call = []
    for _ in range(1 if args.quick else 3):
        dt, out = run([exe, "predict", "--json", *model], stdin)
        one_call.append(dt)
    lines = out.splitlines()
    assert len(lines) == len(prompts)
    gen_dt, gen_out = run([exe, "generate", "--json", "--max-tokens", str(args.max_tokens),
                           "--seed", "1", *model], stdin)
    assert len(gen_out.splitlines()) == len(prompts)

    calls, same = [], 0
    for i, p in enumerate(prompts[:args.calls]):
        dt, single = run([exe, "predict", p, "--json", *model])
        calls.append(dt)
        same += single.strip() == lines[i]
    per_call = statistics.median(calls)
    stdin_s = statistics.median(one_call)
    inproc = in_process(prompts, args.model, args.gen_prompts, args.max_tokens,
                        args.batch_size)

    n = len(prompts)
    rows = [
        [f"`seqtool predict --json` < {n} prompts (one process)", fmt(stdin_s, 2),
         fmt(n / stdin_s, 1), "1.0x"],
        [f"{n} x `seqtool predict PROMPT --json` (median of {len(calls)} calls x {n})",
         fmt(per_call * n, 1), fmt(1 / per_call, 2), f"{per_call * n / stdin_s:.0f}x slower"],
        [f"`seqtool generate --json --max-tokens {args.max_tokens}` < {n} prompts",
         fmt(gen_dt, 2), fmt(n / gen_dt, 1), ""],
        [f"in process: predict_batch, {n} prompts (batch {args.batch_size})",
         fmt(inproc["predict_batched_s"], 2), fmt(n / inproc["predict_batched_s"], 1), "1.0x"],
        [f"in process: predict_next x {n}", fmt(inproc["predict_one_at_a_time_s"], 2),
         fmt(n / inproc["predict_one_at_a_time_s"], 1),
         f"{inproc['predict_one_at_a_time_s'] / inproc['predict_batched_s']:.1f}x slower"],
        [f"in process: generate_batch, {inproc['generate_prompts']} prompts x "
         f"{args.max_tokens} tokens", fmt(inproc["generate_batched_s"], 2),
         fmt(inproc["generate_prompts"] / inproc["generate_batched_s"], 1), "1.0x"],
        [f"in process: generate_text x {inproc['generate_prompts']}",
         fmt(inproc["generate_one_at_a_time_s"], 2),
         fmt(inproc["generate_prompts"] / inproc["generate_one_at_a_time_s"], 1),
         f"{inproc['generate_one_at_a_time_s'] / inproc['generate_batched_s']:.1f}x slower"],
    ]
    print(f"## Many prompts at once ({n} prompts, {args.threads} threads)\n")
    print(markdown_table(["how", "seconds", "prompts/s", "vs batched"], rows, "lrrl"))
    print(f"\nseparate calls: median {per_call:.3f} s each (min {min(calls):.3f}, max "
          f"{max(calls):.3f}); stdin call: {', '.join(f'{t:.2f}' for t in one_call)} s")
    print(f"identical JSON line, stdin vs separate call: {same} of {len(calls)}")
    print(f"in process, predict: {inproc['predict_identical']} of {n} results identical, "
          f"{inproc['predict_same_prediction']} the same prediction, largest probability "
          f"difference {inproc['predict_max_abs_prob_diff']:.3g}")
    print(f"in process, generate (seed 1): {inproc['generate_identical_samples']} of "
          f"{inproc['generate_prompts']} samples identical")
    payload = {"machine": machine_info(), "quick": args.quick, "prompts": n,
               "stdin_call_s": one_call, "separate_call_s": calls,
               "separate_per_call_median_s": per_call,
               "separate_extrapolated_s": per_call * n, "stdin_identical_to_separate": same,
               "generate_stdin_call_s": gen_dt, "in_process": inproc,
               "example_prompts": prompts[:5], "first_answer": json.loads(lines[0])}
    path = write_result("batch_prompts" + ("_quick" if args.quick else ""), payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
