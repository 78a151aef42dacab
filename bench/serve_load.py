"""Load on `seqtool serve`: N concurrent clients on the loopback interface sending
translation requests (one Multi30k validation sentence each, shipped de->en
model, its default beam), to the server with batching and to the same server
answering one request at a time (--max-batch 1 --batch-window 0), both running,
in alternating rounds; then chat sessions (each client its own session, one turn
per request, the shipped chat model). Requests/s, p50/p99 latency, and each
server's peak RSS (VmHWM) with every shipped model loaded. Last, the ceiling:
the model alone in this process (translate_batch, no server), the same
sentences one at a time and in batches of N.

    targets: 16 clients: translate throughput >= 3x the one-at-a-time rate; p99
             reported; peak RSS < 1 GB for the shipped models

The translation load comes from wrk where it is installed (apt-get install wrk:
a C client, see load_wrk), else from httpx in this process; chat always from
httpx (it follows the session ids). Bounded: at most 64 clients, --rounds x 2 x
--seconds of translation load (default 6 x 2 x 10 s) plus 15 s of chat and the
server starts: about 3-4 minutes; loopback only.

    .venv/bin/python bench/serve_load.py [--clients 16] [--seconds 10] [--rounds 6]
                                         [--threads 2] [--client wrk|httpx]
                                         [--corpus ../shared/corpora/multi30k] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpora" / "multi30k"
MAX_CLIENTS = 64
TURNS = ["Hi , how are you doing today ?", "I'm looking for a present for my sister .",
         "She likes reading and going to the cinema .", "How much would a good book cost ?",
         "Where is the nearest bookshop ?", "Is it open on Sundays ?",
         "Do you know any good films ?", "Maybe a comedy then .",
         "Can we have dinner before the film ?", "OK , see you then ."]


def start(args: argparse.Namespace, *flags: str) -> tuple[subprocess.Popen, str]:
    """`seqtool serve` with every shipped model on a free loopback port."""
    cmd = [sys.executable, "-m", "seqtool", "serve", "--host", "127.0.0.1", "--port", "0",
           "--json", "--threads", str(args.threads), "--timeout", "120", *flags]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        raise SystemExit("the server did not start: " + " ".join(cmd))
    return p, json.loads(line)["url"]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, clients: int, seconds: float, make: Any) -> dict[str, Any]:
    """`clients` loops posting make(client, i) -> (path, body) until `seconds` pass."""
    import httpx

    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def client(c: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        i = 0
        state: dict[str, Any] = {}
        while time.perf_counter() < stop_at:
            path, body = make(c, i, state)
            t0 = time.perf_counter()
            r = await http.post(url + path, json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors += 1
            elif "session" in r.json():
                state["session"] = r.json()["session"]
            i += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        wall = time.perf_counter() - t0
    return summary([latencies], errors, wall, clients)


WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %%d %%d %%d %%d %%d\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""


def load_wrk(url: str, clients: int, seconds: float, bodies: list[dict[str, Any]],
             tmp: Path) -> dict[str, Any]:
    """The same closed loop as `load` (each connection sends its next request when
    the answer came), driven by wrk: its C client spends microseconds per request
    where httpx spends about 1.8 ms of this machine's 2 cores (measured against a
    server answering at once), which at 90 requests/s is a sixth of a core taken
    from the server under test."""
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % ", ".join(
        "[==[" + json.dumps(b, ensure_ascii=False) + "]==]" for b in bodies), "utf-8")
    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s",
                          f"--timeout={max(10, int(seconds) * 2)}s", "-s", str(script),
                          url + "/translate"], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRK "))
    requests, errors, duration_us, p50_us, p99_us = map(int, line.split()[1:])
    wall = duration_us / 1e6
    return {"clients": clients, "requests": requests, "errors": errors,
            "wall_s": round(wall, 2), "requests_per_s": requests / wall,
            "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000}


def summary(latencies: list[list[float]], errors: int, wall: float, clients: int
            ) -> dict[str, Any]:
    every = [x for part in latencies for x in part]
    q = statistics.quantiles(every, n=100) if len(every) > 1 else every * 99
    return {"clients": clients, "requests": len(every), "errors": errors,
            "wall_s": round(wall, 2), "requests_per_s": len(every) / wall,
            "p50_ms": 1000 * statistics.median(every), "p99_ms": 1000 * q[98],
            "latencies": every}


def sentences(corpus: Path, n: int) -> list[str]:
    with gzip.open(corpus / "val.de.gz", "rt", encoding="utf-8") as f:
        return [line.strip() for _, line in zip(range(n), f, strict=False)]


def translate_phases(args: argparse.Namespace, src: list[str]) -> dict[str, Any]:
    """The batching server against the one-at-a-time server, both running, in
    alternating rounds (ABBA...): the machine's speed drifts by up to 2x over
    minutes here, so each round's ratio compares two neighbouring stretches of time,
    and the figure is the median of those ratios."""
    import httpx

    flags = {"batched": ["--max-batch", str(args.max_batch), "--batch-window",
                         str(args.window_ms)],
             "one_at_a_time": ["--max-batch", "1", "--batch-window", "0"]}
    servers = {name: start(args, *f) for name, f in flags.items()}
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    try:
        for _, url in servers.values():  # warm up
            httpx.post(url + "/translate", json={"model": "translate-de-en",
                                                 "texts": src[:8]}, timeout=120)
        bodies = [{"model": "translate-de-en", "text": text} for text in src]
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                url = servers[name][1]
                rounds[name].append(
                    load_wrk(url, args.clients, args.seconds, bodies, args.tmp)
                    if args.client == "wrk" else asyncio.run(load(
                        url, args.clients, args.seconds, lambda c, i, s: (
                            "/translate", bodies[(c * 37 + i) % len(bodies)]))))
        out: dict[str, Any] = {}
        for name, (p, url) in servers.items():
            res = _pooled(rounds[name], args.clients)
            res["rounds_requests_per_s"] = [round(x["requests_per_s"], 2) for x in rounds[name]]
            res["batches"] = httpx.get(url + "/health").json()["batches"]["translate"]
            res["peak_rss_mb"] = peak_rss_mb(p.pid)
            out[name] = res
    finally:
        for p, _ in servers.values():
            p.terminate()
            p.wait(30)
    ratios = [a / b for a, b in zip(out["batched"]["rounds_requests_per_s"],
                                    out["one_at_a_time"]["rounds_requests_per_s"], strict=True)]
    out["round_ratios"] = [round(x, 2) for x in ratios]
    out["ratio_median"] = statistics.median(ratios)
    return out


def _pooled(rounds: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """One mode's rounds together: requests/s over all rounds; p50/p99 over every
    request (httpx) or the median of the rounds' (wrk reports percentiles only)."""
    if all("latencies" in x for x in rounds):
        res = summary([x.pop("latencies") for x in rounds], sum(x["errors"] for x in rounds),
                      sum(x["wall_s"] for x in rounds), clients)
        res.pop("latencies")
        return res
    wall = sum(x["wall_s"] for x in rounds)
    requests = sum(x["requests"] for x in rounds)
    return {"clients": clients, "requests": requests,
            "errors": sum(x["errors"] for x in rounds), "wall_s": round(wall, 2),
            "requests_per_s": requests / wall,
            "p50_ms": statistics.median(x["p50_ms"] for x in rounds),
            "p99_ms": statistics.median(x["p99_ms"] for x in rounds)}


def model_phase(args: argparse.Namespace, src: list[str]) -> dict[str, Any]:
    """The ceiling batching can reach: translate_batch in this process, no server, the
    same 64 sentences one at a time and in batches of `clients`."""
    import torch

    from seqtool.loading import load_translator
    from seqtool.translation import translate_batch

    torch.set_num_threads(args.threads)
    loaded = load_translator(None, "de", "en")
    search, lines = loaded.config.search, src[:64]
    translate_batch(loaded, lines[:8], search)  # warm up
    out = {}
    for size in (1, args.clients):
        t0 = time.perf_counter()
        for k in range(0, len(lines), size):
            translate_batch(loaded, lines[k:k + size], search, batch_size=size)
        out[f"batch_{size}_sentences_per_s"] = len(lines) / (time.perf_counter() - t0)
    out["speedup"] = out[f"batch_{args.clients}_sentences_per_s"] / out["batch_1_sentences_per_s"]
    return out


def chat_phase(args: argparse.Namespace) -> dict[str, Any]:
    p, url = start(args)

    def turn(c: int, i: int, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        text = TURNS[(c + i) % len(TURNS)]
        if "session" in state:
            return "/chat", {"session": state["session"], "text": text}
        return "/chat", {"model": "chat-dailydialog", "text": text, "seed": c}

    try:
        many = asyncio.run(load(url, args.clients, args.seconds, turn))
        one = asyncio.run(load(url, 1, args.seconds / 2, turn))
        many.pop("latencies"), one.pop("latencies")
        many["peak_rss_mb"] = peak_rss_mb(p.pid)
    finally:
        p.terminate()
        p.wait(30)
    return {"many": many, "one": one}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16, help=f"concurrent clients (<= "
                    f"{MAX_CLIENTS})")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each round")
    ap.add_argument("--rounds", type=int, default=6, help="translate rounds per server "
                    "(alternating)")
    ap.add_argument("--threads", type=int, default=2, help="the server's torch threads")
    ap.add_argument("--max-batch", type=int, default=32, help="the batching server's batch")
    ap.add_argument("--window-ms", type=float, default=5.0, help="its wait window")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="multi30k corpus folder")
    ap.add_argument("--client", choices=("wrk", "httpx"), default=None,
                    help="translate load generator (default: wrk where installed, "
                         "apt-get install wrk)")
    ap.add_argument("--quick", action="store_true", help="4 clients, 3 s rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.rounds = 4, 3.0, 2
    args.clients = max(1, min(args.clients, MAX_CLIENTS))
    args.seconds = max(1.0, min(args.seconds, 60.0))
    args.rounds = max(1, min(args.rounds, 20))
    args.client = args.client or ("wrk" if shutil.which("wrk") else "httpx")
    args.tmp = Path(tempfile.mkdtemp(prefix="serve_load_"))
    src = sentences(args.corpus, 500)
    phases = translate_phases(args, src)
    batched, single = phases["batched"], phases["one_at_a_time"]
    chat = chat_phase(args)
    alone = model_phase(args, src)
    ratio = phases["ratio_median"]
    peak = max(batched["peak_rss_mb"], single["peak_rss_mb"], chat["many"]["peak_rss_mb"])
    result = {"machine": machine_info(), "clients": args.clients, "seconds": args.seconds,
              "threads": args.threads, "rounds": args.rounds, "client": args.client,
              "translate_batched": batched,
              "translate_one_at_a_time": single, "round_ratios": phases["round_ratios"],
              "speedup": ratio, "chat": chat,
              "model_alone": alone,
              "peak_rss_mb": peak, "targets": {"speedup>=3": ratio >= 3,
                                               "peak_rss<1GB": peak < 1024}}
    rows = [[name, r["clients"], r["requests"], r["errors"], fmt(r["requests_per_s"]),
             fmt(r["p50_ms"], 0), fmt(r["p99_ms"], 0), fmt(r.get("peak_rss_mb"), 0)]
            for name, r in (("translate, batched", batched),
                            ("translate, one at a time", single),
                            (f"chat, {args.clients} sessions", chat["many"]),
                            ("chat, 1 session", chat["one"]))]
    print(markdown_table(["server", "clients", "requests", "errors", "requests/s",
                          "p50 ms", "p99 ms", "peak RSS MB"], rows))
    print(f"\nbatched / one at a time: {ratio:.2f}x, the median of {args.rounds} alternating "
          f"rounds ({', '.join(f'{x:.2f}' for x in phases['round_ratios'])}); batches: mean "
          f"{batched['batches']['mean']} sentences, largest {batched['batches']['largest']}")
    print(f"the model alone (no server), 64 sentences: "
          f"{alone['batch_1_sentences_per_s']:.1f} sentences/s one at a time, "
          f"{alone[f'batch_{args.clients}_sentences_per_s']:.1f} in batches of {args.clients} "
          f"({alone['speedup']:.2f}x)")
    print(f"peak RSS {peak:.0f} MB with every shipped model loaded")
    name = "serve_load_quick" if args.quick else "serve_load"
    print("results:", write_result(name, result).relative_to(REPO))
    return result


if __name__ == "__main__":
    main()
