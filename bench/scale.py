"""Corpora larger than memory: peak RSS, tokenisation time and time to the first
training step of `seqtool train translate` and of OpenNMT-py on the same files,
at several corpus sizes, in one run.

The corpora are Multi30k train (de -> en, 29,000 pairs) repeated and shuffled
(each repetition its own seeded permutation) to --sizes pairs, lower-cased, white space normalised,
written to a temporary folder outside the repository (nothing of the corpus is
kept); validation is the first 100 pairs of Multi30k val. Both tools train the
peers' word-level model (seqtool: the translate-multi30k-peer preset; OpenNMT-py
3.5.1: shared/peers/configs/onmt_gru.yaml.in, min freq 2) for --steps steps on
2 threads, one tool at a time (30 steps by default, as the issue's figures: a
step's memory follows its batch's longest sentence, so a peak over a few steps
would measure the batches drawn more than the corpus size):

    seqtool train translate --config translate-multi30k-peer --train-src ... --json
        (a fresh SEQTOOL_HOME: the tokenizer is trained and the token store built)
    onmt_build_vocab -config onmt.yaml -n_sample -1;  onmt_train -config onmt.yaml

and, at --sp-sizes, seqtool's sentencepiece preset (translate-multi30k: a joint
unigram vocabulary of 8,000 trained on at most tokenizer.sample_size lines).

Peak RSS is the largest sum of the resident set sizes of the command and all its
child processes, sampled every 50 ms (seqtool's tokeniser workers count). Time
to the first step: from the command's start until seqtool's RUN/train.jsonl, or
OpenNMT-py's "Step  1/" report, appears (log_every / report_every 1).
With --workers-at N (default: the largest size), the word vocabularies are
counted and the token store of the N-pair corpus built once by 1 worker (in the
process itself) and once by 2 worker processes, to show both cores at work.

Usage (repository root, project venv; OpenNMT-py from ../shared/peers/setup.sh):
  flock $BENCH_LOCK .venv/bin/python bench/scale.py \
      [--sizes 100000,1000000,5000000] [--steps 30] [--workers-at 5000000] \
      [--peers-dir /tmp/peers] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "multi30k"
PEER_CONFIG = ROOT.parent / "shared" / "peers" / "configs" / "onmt_gru.yaml.in"


def read_gz(name: str) -> list[str]:
    with gzip.open(CORPUS / name, "rt", encoding="utf-8") as f:
        # one space between tokens: OpenNMT-py's vocabulary reader splits on any
        # white space (Multi30k has a few non-breaking spaces)
        return [" ".join(line.lower().split()) for line in f]


def make_corpus(out: Path, n: int, src: list[str], tgt: list[str]) -> None:
    """n pairs: Multi30k train repeated, each copy in its own seeded order."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(n)
    with open(out / "train.de", "w", encoding="utf-8") as fs, \
            open(out / "train.en", "w", encoding="utf-8") as ft:
        left = n
        while left > 0:
            order = list(range(len(src)))
            rng.shuffle(order)
            order = order[:left]
            fs.write("".join(src[i] + "\n" for i in order))
            ft.write("".join(tgt[i] + "\n" for i in order))
            left -= len(order)
    vs, vt = read_gz("val.de.gz")[:100], read_gz("val.en.gz")[:100]
    (out / "val.de").write_text("".join(s + "\n" for s in vs), "utf-8")
    (out / "val.en").write_text("".join(t + "\n" for t in vt), "utf-8")


def _tree_rss_kb(root: int) -> int:
    """Resident set size of `root` and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss[int(d)] = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def measure(cmd: list[str], env: dict[str, str], log: Path,
            first_step: Callable[[], bool] | None = None) -> dict[str, float]:
    """Run cmd (stdout+stderr to log); peak tree RSS (MB), wall s, time to first step."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        peak, first = 0, None
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kb(proc.pid))
            if first is None and first_step is not None and first_step():
                first = time.perf_counter() - t0
            time.sleep(0.05)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {log.read_text()[-3000:]}")
    out = {"peak_rss_mb": round(peak / 1024, 1), "wall_s": round(wall, 2)}
    if first_step is not None:
        out["first_step_s"] = round(first if first is not None else wall, 2)
    return out


def base_env(tmp: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
            "HOME": str(tmp), "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def run_seqtool(data: Path, work: Path, steps: int, preset: str = "translate-multi30k-peer"
                ) -> dict[str, object]:
    home, run = work / "home", work / "run"
    env = base_env(work) | {"SEQTOOL_HOME": str(home)}
    exe = Path(sys.executable).with_name("seqtool")
    cmd = [str(exe), "train", "translate", "--config", preset,
           "--train-src", str(data / "train.de"), "--train-tgt", str(data / "train.en"),
           "--valid-src", str(data / "val.de"), "--valid-tgt", str(data / "val.en"),
           "--set", f"train.max_steps={steps}", "--set", "train.log_every=1",
           "--out", str(run), "--device", "cpu", "--threads", "2", "--json"]
    log = work / "seqtool.log"
    res: dict[str, object] = dict(measure(cmd, env, log,
                                          lambda: (run / "train.jsonl").is_file()
                                          and (run / "train.jsonl").stat().st_size > 0))
    text = log.read_text()
    summary = json.loads(text[text.index("{"):])
    res["store_s"] = summary["token_store"]["seconds"]
    res["tokenizer_s"] = summary["token_store"]["tokenizer_seconds"]
    res["store_workers"] = summary["token_store"]["workers"]
    res["train_pairs"] = summary["train_pairs"]
    res["vocab"] = summary["vocab_size"]
    return res


def run_onmt(data: Path, work: Path, steps: int, peers: Path) -> dict[str, object]:
    bin_dir = peers / "venv-onmt" / "bin"
    cfg = PEER_CONFIG.read_text()
    for k, v in {"OUT": str(work), "STEPS": str(steps), "SEED": "1234", "EMB": "128",
                 "ENC_HID": "128", "DEC_HID": "256", "LAYERS": "1", "MIN_FREQ": "2"}.items():
        cfg = cfg.replace(f"@{k}@", v)
    cfg = cfg.replace('"@DATA@/train.src"', f'"{data}/train.de"')
    cfg = cfg.replace('"@DATA@/train.tgt"', f'"{data}/train.en"')
    cfg = cfg.replace('"@DATA@/dev.src"', f'"{data}/val.de"')
    cfg = cfg.replace('"@DATA@/dev.tgt"', f'"{data}/val.en"')
    cfg = cfg.replace("report_every: 100", "report_every: 1")
    (work / "model").mkdir(parents=True, exist_ok=True)
    (work / "onmt.yaml").write_text(cfg)
    env = base_env(work)
    vocab = measure([str(bin_dir / "onmt_build_vocab"), "-config", str(work / "onmt.yaml"),
                     "-n_sample", "-1"], env, work / "vocab.log")
    log = work / "train.log"
    def first_step() -> bool:
        return log.is_file() and re.search(r"Step\s+1/", log.read_text(errors="replace")) \
            is not None

    train = measure([str(bin_dir / "onmt_train"), "-config", str(work / "onmt.yaml")], env,
                    log, first_step)
    return {"build_vocab": vocab, "train": train,
            "peak_rss_mb": max(vocab["peak_rss_mb"], train["peak_rss_mb"]),
            "first_step_s": round(vocab["wall_s"] + train["first_step_s"], 2)}


WORKERS_SNIPPET = """
import json, sys, time
from pathlib import Path
from seqtool.config import TokenizerConfig
from seqtool.data import store as st
data, root = Path(sys.argv[1]), Path(sys.argv[2])
files = st.ParallelFiles(data / "train.de", data / "train.en")
tc = TokenizerConfig(kind="word", min_freq=2, lowercase=True)
out = {}
for w in (1, 2):
    t0 = time.perf_counter()
    src, tgt = st.train_pair_tokenizers(tc, False, files, workers=w)
    out[f"tokenizer_{w}_worker_s"] = round(time.perf_counter() - t0, 2)
    s = st.token_store(files, src, tgt, root / f"w{w}", workers=w)
    out[f"store_{w}_worker_s"] = round(s.seconds, 2)
    out[f"total_{w}_worker_s"] = round(out[f"tokenizer_{w}_worker_s"] + s.seconds, 2)
out["speedup_2_vs_1"] = round(out["total_1_worker_s"] / out["total_2_worker_s"], 2)
print(json.dumps(out))
"""


def batch_lengths(sizes: list[int], steps: int) -> None:
    """The longest source and target in the first `steps` training batches of each
    corpus (seed 1234, epoch 0, 64 pairs): a step's memory follows them. Word-level
    lengths are the white-space token counts here (every word of the repeated corpus
    is in the vocabulary, min freq 2)."""
    import numpy as np

    from seqtool.data.store_batches import store_bucket_batches

    src, tgt = read_gz("train.de.gz"), read_gz("train.en.gz")
    sl = np.array([len(x.split()) for x in src], np.int32)
    tl = np.array([len(x.split()) for x in tgt], np.int32)
    for n in sizes:
        rng, order, left = random.Random(n), [], n
        while left > 0:  # the order make_corpus writes
            o = list(range(len(src)))
            rng.shuffle(o)
            order += o[:left]
            left -= len(o[:left])
        idx = np.array(order)
        perm, spans = store_bucket_batches(sl[idx], tl[idx], 64, 1234, 0)
        first = [perm[a:b] for a, b in spans[:steps]]
        print(f"{n:,} pairs, first {steps} batches: longest source "
              f"{max(int(sl[idx][b].max()) for b in first)}, longest target "
              f"{max(int(tl[idx][b].max()) for b in first)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100000,1000000,5000000")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--workers-at", type=int, default=0, help="0 = the largest size")
    p.add_argument("--peers-dir", default=os.environ.get("PEERS_DIR", "/tmp/peers"))
    p.add_argument("--tmp", default=None, help="folder for the corpora (default: a temp dir)")
    p.add_argument("--no-onmt", action="store_true")
    p.add_argument("--sp-sizes", default="100000,5000000",
                   help="sizes at which seqtool also trains its sentencepiece preset "
                        "(translate-multi30k: one joint unigram vocabulary of 8,000)")
    p.add_argument("--batch-lengths", action="store_true",
                   help="only print the longest sentences of each corpus's first --steps "
                        "training batches (no training)")
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    if a.batch_lengths:
        batch_lengths(sizes, a.steps)
        return
    src, tgt = read_gz("train.de.gz"), read_gz("train.en.gz")
    rows = []
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp_name:
        tmp = Path(tmp_name)
        for n in sizes:
            data = tmp / f"data{n}"
            make_corpus(data, n, src, tgt)
            row: dict[str, object] = {"pairs": n, "mb": round(
                sum((data / f).stat().st_size for f in ("train.de", "train.en")) / 1e6, 1)}
            row["seqtool"] = run_seqtool(data, tmp / f"seqtool{n}", a.steps)
            if str(n) in a.sp_sizes.split(","):
                row["seqtool_sp"] = run_seqtool(data, tmp / f"sp{n}", a.steps,
                                                "translate-multi30k")
            if not a.no_onmt:
                row["onmt"] = run_onmt(data, tmp / f"onmt{n}", a.steps, Path(a.peers_dir))
            if n == (a.workers_at or max(sizes)):
                w = subprocess.run([sys.executable, "-c", WORKERS_SNIPPET, str(data),
                                    str(tmp / f"workers{n}")], capture_output=True, text=True,
                                   env=base_env(tmp) | {"SEQTOOL_HOME": str(tmp / "wh")})
                if w.returncode:
                    sys.exit(w.stderr[-3000:])
                row["workers"] = json.loads(w.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
            for f in data.iterdir():
                f.unlink()
    base = rows[0]["seqtool"]["peak_rss_mb"]  # type: ignore[index]
    res = {"steps": a.steps, "rows": rows, "cpu_count": os.cpu_count(),
           "rss_ratio_largest_vs_smallest": round(rows[-1]["seqtool"]["peak_rss_mb"]  # type: ignore[index]
                                                  / base, 3)}
    out = ROOT / "bench" / "results" / ("scale.json" if a.steps == 30 and not a.no_onmt
                                        else f"scale_{a.steps}steps.json")
    out.write_text(json.dumps(res, indent=1))
    print("| pairs | MB | seqtool peak RSS MB | seqtool first step s | tokenizer + store s | "
          "OpenNMT-py peak RSS MB (build_vocab / train) | OpenNMT-py first step s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s, o = r["seqtool"], r.get("onmt")
        onmt = (f"{o['peak_rss_mb']:,.0f} ({o['build_vocab']['peak_rss_mb']:,.0f} / "  # type: ignore[index]
                f"{o['train']['peak_rss_mb']:,.0f}) | {o['first_step_s']}" if o else "- | -")  # type: ignore[index]
        print(f"| {r['pairs']:,} | {r['mb']} | {s['peak_rss_mb']:,.0f} | "  # type: ignore[index]
              f"{s['first_step_s']} | {s['tokenizer_s']} + {s['store_s']} | {onmt} |")  # type: ignore[index]
    print(f"peak RSS, largest / smallest: {res['rss_ratio_largest_vs_smallest']}")
    for r in rows:
        if "seqtool_sp" in r:
            sp = r["seqtool_sp"]
            print(f"sentencepiece preset, {r['pairs']:,} pairs: peak RSS "  # type: ignore[index]
                  f"{sp['peak_rss_mb']:,.0f} MB, first step {sp['first_step_s']} s, "  # type: ignore[index]
                  f"tokenizer {sp['tokenizer_s']} s + store {sp['store_s']} s")  # type: ignore[index]


if __name__ == "__main__":
    main()
