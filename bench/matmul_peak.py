"""This CPU's matmul peak with torch, in fp32 and bf16.

One square matmul C = A @ B of size n costs 2 n^3 FLOPs; the peak is that
over the best (shortest) of many repeats, so it is what torch's GEMM (MKL /
oneDNN) reaches at best on this machine with the current thread count. It is
the yardstick the other benchmarks divide their achieved GFLOP/s by.

    .venv/bin/python bench/matmul_peak.py [--quick] [--sizes 1024 2048] [--seconds 3]

Importable: `from matmul_peak import measure_peak` (with bench/ on sys.path)
-> measure_peak(torch.float32, 2.0) returns GFLOP/s.

Known figures on the 2-core dev machine: ~180 GFLOP/s fp32, ~430 bf16.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
MIN_REPEATS = 3


@dataclass
class PeakResult:
    dtype: str
    size: int
    gflops: float  # best repeat
    median_gflops: float
    best_ms: float
    repeats: int


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _name(dtype: torch.dtype) -> str:
    return next((k for k, v in DTYPES.items() if v == dtype), str(dtype))


def measure(dtype: torch.dtype | str, seconds: float = 2.0, size: int = 2048) -> PeakResult:
    """Repeat an n x n matmul for about `seconds` (at least MIN_REPEATS times)."""
    dt = _dtype(dtype)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dt)
    b = torch.randn(size, size, generator=gen).to(dt)
    out = torch.empty(size, size, dtype=dt)
    torch.mm(a, b, out=out)  # warm-up: thread pool, oneDNN primitive creation
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < MIN_REPEATS or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * size ** 3
    best = min(times)
    median = sorted(times)[len(times) // 2]
    return PeakResult(_name(dt), size, flops / best / 1e9, flops / median / 1e9,
                      best * 1e3, len(times))


def measure_peak(dtype: torch.dtype | str, seconds: float = 2.0, size: int = 2048) -> float:
    """Best matmul GFLOP/s for `dtype` (torch.float32 / torch.bfloat16, or 'fp32' / 'bf16')."""
    return measure(dtype, seconds, size).gflops


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 0.3 s per measurement")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per dtype and size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048], help="square matmul sizes")
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = ap.parse_args(argv)
    seconds = 0.3 if args.quick else args.seconds
    torch.set_num_threads(args.threads)

    results = [measure(d, seconds, n) for d in args.dtypes for n in args.sizes]
    peak = {d: max(r.gflops for r in results if r.dtype == d) for d in args.dtypes}
    rows = [[r.dtype, r.size, fmt(r.gflops, 1), fmt(r.median_gflops, 1), fmt(r.best_ms, 1),
             r.repeats] for r in results]
    print(f"## Matmul peak ({args.threads} threads{', quick' if args.quick else ''})\n")
    print(markdown_table(["dtype", "n", "best GFLOP/s", "median GFLOP/s", "best ms", "repeats"],
                         rows))
    if "fp32" in peak and "bf16" in peak and peak["fp32"] > 0:
        print(f"\nbf16 / fp32 peak: {peak['bf16'] / peak['fp32']:.2f}x")
    payload: dict[str, object] = {"machine": machine_info(), "quick": args.quick,
                                  "seconds": seconds, "peak_gflops": peak,
                                  "results": [asdict(r) for r in results]}
    path = write_result("matmul_peak" + ("_quick" if args.quick else ""), payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
