"""seqtool vs Joey NMT and OpenNMT-py on Multi30k de->en, in one run: training
target tokens/s, beam-5 (and greedy) sentences/s and BLEU of the same model.

The model is the peers' benchmark model (../shared/peers/NOTES.md): word-level
vocabularies (min freq 2), embeddings 128, bi-GRU 128 per direction, GRU
decoder 256, Bahdanau attention, input feeding, no bridge layer, no dropout,
Adam 1e-3, clip 5, 64 sentences per batch; seqtool's `translate-multi30k-peer`
preset. All three train on the same pre-tokenized files (made by the peers'
make_data.py), for --steps steps, with 2 threads, one tool at a time, and
translate the 1,000 test_2016_flickr sentences in batches of 64 (max 100
tokens out, beam 5 without length penalty, seqtool's length ratio off). BLEU is sacrebleu with
tokenize=none on the tokenized text, as the peers' eval_bleu.py.

Figures, as defined in NOTES.md:
  tok/s      the median of each tool's own periodic report of target tokens per
             second (EOS included), the first window dropped;
  sent/s     1,000 / the decoding time with the model already loaded.

Then (--decode-reps N, default 3) OpenNMT-py's and seqtool's (bf16) beam-5
decoding run alternately N times on the models just trained, each ratio taken
from two decodings seconds apart (this VM's speed drifts by 10-20% over minutes);
with --train-reps N both also train --rep-steps steps alternately N times.

Usage (repository root, project venv, idle machine):
  .venv/bin/python bench/translate_vs_peers.py [--steps 400] [--precision fp32 bf16]
      [--peers joey onmt] [--peers-dir /tmp/peers] [--decode-reps 3]
      [--train-reps 0 --rep-steps STEPS] [--quick]
The peers' virtual environments come from ../shared/peers/setup.sh (run it
first: bash ../shared/peers/setup.sh all).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
CORPUS = ROOT.parent / "shared" / "corpora" / "multi30k"


def make_data(data: Path) -> None:
    if (data / "test.tgt").exists():
        return
    subprocess.run([sys.executable, str(PEERS / "make_data.py"), str(data), "--multi30k",
                    str(CORPUS)], check=True)


def run_peer(peer: str, data: Path, out: Path, steps: int, peers_dir: Path) -> dict:
    env = {**os.environ, "STEPS": str(steps), "MIN_FREQ": "2", "THREADS": "2",
           "PEERS_DIR": str(peers_dir), "IDLE_WAIT_MAX": "60"}
    t0 = time.perf_counter()
    subprocess.run(["bash", str(PEERS / f"run_{peer}.sh"), str(data), str(out)], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    res = json.loads((out / "result.json").read_text())
    res["bench_wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def train_seqtool(data: Path, out: Path, steps: int, precision: str) -> tuple[dict, float, float]:
    """Train the peers' model for `steps` steps: (summary, median tok/s of the
    Trainer's 50-step reports with the first dropped, wall seconds)."""
    from seqtool.commands.train_translate import train_translate
    from seqtool.configfile import load_config
    from seqtool.reporting import NullReporter

    class Capture(NullReporter):
        """Keeps the Trainer's periodic tokens/s reports."""

        def __init__(self) -> None:
            self.tok_s: list[float] = []

        def on_step(self, stats: dict) -> None:
            self.tok_s.append(stats["tokens_per_s"])

    files = {"train_src": data / "train.src", "train_tgt": data / "train.tgt",
             "valid_src": data / "dev.src", "valid_tgt": data / "dev.tgt"}
    cfg = load_config("translate", "translate-multi30k-peer", (
        f"train.max_steps={steps}", f"train.precision={precision}", "train.log_every=50",
        "data.bleu_tokenize=none", "tokenizer.lowercase=false"),
        {"data": {"corpus": "", **{k: str(v) for k, v in files.items()}}})
    capture = Capture()
    subprocess.run(["rm", "-rf", str(out)], check=True)
    t0 = time.perf_counter()
    summary = train_translate(cfg, out, None, capture, "cpu", 2)
    return (summary, statistics.median(capture.tok_s[1:] or capture.tok_s),
            time.perf_counter() - t0)


def run_seqtool(data: Path, out: Path, steps: int, precision: str) -> dict:
    import torch

    from seqtool.loading import load_translator

    summary, tok_s, train_wall = train_seqtool(data, out, steps, precision)
    torch.set_num_threads(2)
    loaded = load_translator(out / "last", None, None, "cpu")
    src = (data / "test.src").read_text("utf-8").splitlines()
    res = {"tool": f"seqtool ({precision})",
           "params": sum(p.numel() for p in loaded.model.parameters()),
           "vocab": [loaded.tokenizer.vocab_size, loaded.tgt_tokenizer.vocab_size],
           "steps": summary["steps"],
           "tool_tok_s": round(tok_s),
           "train_wall_s": round(train_wall, 1)}
    for mode, beam in (("greedy", 1), ("beam5", 5)):
        gen, hyps = seqtool_decode(loaded, src, beam)
        hyp_file = out / f"test.{mode}.hyp"
        hyp_file.write_text("".join(h + "\n" for h in hyps), "utf-8")
        score = json.loads(subprocess.check_output(
            [sys.executable, str(PEERS / "eval_bleu.py"), str(data / "test.tgt"), str(hyp_file)]))
        res[mode] = {"gen_s": round(gen, 2), "sent_s": round(len(src) / gen, 1),
                     "bleu": score["bleu"], "chrf": score["chrf"]}
    return res


def seqtool_decode(loaded: Any, src: list[str], beam: int) -> tuple[float, list[str]]:
    """(seconds, translations) of the test sources, model already loaded. As the
    peers: no length penalty, only the hard cap of 100 output tokens (a ratio of
    100 x the source length never binds first), batches of 64."""
    from seqtool.translation import search_settings, translate_lines

    search = search_settings(loaded.config.search, beam_size=beam, n_best=1, alpha=0.0,
                             max_len_ratio=100.0, no_repeat_ngram=0)
    t0 = time.perf_counter()
    hyps = [t.texts[0] for t in translate_lines(loaded, src, search, "cpu", 64)]
    return time.perf_counter() - t0, hyps


def onmt_beam5_seconds(data: Path, work: Path, peers_dir: Path) -> float:
    """OpenNMT-py's own "Total translation time" for beam 5 on the test set, with the
    model run_onmt.sh trained and the onmt_translate arguments that script uses."""
    model = max((work / "onmt" / "model").glob("model_step_*.pt"),
                key=lambda p: p.stat().st_mtime)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    out = subprocess.run(
        [str(peers_dir / "venv-onmt" / "bin" / "onmt_translate"), "-model", str(model),
         "-src", str(data / "test.src"), "-output", str(work / "onmt" / "rep.hyp"),
         "-beam_size", "5", "-batch_size", "64", "-batch_type", "sents", "-max_length", "100",
         "-report_time", "-seed", "1234"], env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Total translation time \(s\): ([\d.]+)", out.stdout + out.stderr)
    if not found:
        raise SystemExit("onmt_translate did not report its translation time")
    return float(found.group(1))


def pair_ratios(onmt: list[float], ours: list[float]) -> dict:
    """seqtool / OpenNMT-py for each alternating pair, and their median."""
    ratios = [round(b / a, 2) for a, b in zip(onmt, ours, strict=False)]
    return {"ratios": ratios, "median_ratio": statistics.median(ratios)}


def decode_reps(data: Path, work: Path, peers_dir: Path, reps: int) -> dict:
    """Beam-5 sentences/s of OpenNMT-py and seqtool (bf16), alternating `reps` times on
    the models trained above: this VM's speed drifts by 10-20% over minutes, so a
    ratio of two decodings a few seconds apart is steadier than one of two
    decodings minutes apart."""
    import torch

    from seqtool.loading import load_translator

    torch.set_num_threads(2)
    loaded = load_translator(work / "seqtool-bf16" / "last", None, None, "cpu")
    src = (data / "test.src").read_text("utf-8").splitlines()
    onmt, ours = [], []
    for _ in range(reps):
        onmt.append(round(len(src) / onmt_beam5_seconds(data, work, peers_dir), 1))
        ours.append(round(len(src) / seqtool_decode(loaded, src, 5)[0], 1))
    return {"onmt_sent_s": onmt, "seqtool_bf16_sent_s": ours, **pair_ratios(onmt, ours)}


def train_reps(data: Path, work: Path, peers_dir: Path, reps: int, steps: int) -> dict:
    """Training tok/s of OpenNMT-py and seqtool (bf16), `steps` steps each, alternating
    `reps` times (each pair minutes rather than ten minutes apart)."""
    onmt, ours = [], []
    for i in range(reps):
        onmt.append(run_peer("onmt", data, work / f"onmt-rep{i}", steps, peers_dir)["tool_tok_s"])
        ours.append(round(train_seqtool(data, work / f"seqtool-rep{i}", steps, "bf16")[1]))
    return {"steps": steps, "onmt_tok_s": onmt, "seqtool_bf16_tok_s": ours,
            **pair_ratios(onmt, ours)}


def row(r: dict) -> str:
    g, b = r["greedy"], r["beam5"]
    return (f"| {r['tool']} | {r['params']:,} | {r['tool_tok_s']:,} | {g['sent_s']:,} | "
            f"{b['sent_s']:,} | {g['bleu']} / {b['bleu']} | {g['chrf']} / {b['chrf']} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--peers", nargs="*", default=["joey", "onmt"])
    p.add_argument("--peers-dir", type=Path, default=Path("/tmp/peers"))
    p.add_argument("--work", type=Path, default=Path("/tmp/seqtool-bench-translate"))
    p.add_argument("--decode-reps", type=int, default=3,
                   help="then beam 5 of OpenNMT-py and seqtool bf16 alternately N times")
    p.add_argument("--train-reps", type=int, default=0,
                   help="then train OpenNMT-py and seqtool bf16 alternately N times")
    p.add_argument("--rep-steps", type=int, default=0,
                   help="training steps of each rep (default --steps; OpenNMT-py reports every "
                        "100 steps and its first report, with start-up, is slow: 300 at least)")
    p.add_argument("--quick", action="store_true", help="20 steps, seqtool fp32 only")
    a = p.parse_args()
    if a.quick:
        a.steps, a.precision, a.peers = 20, ["fp32"], []
    data = a.work / "data"
    make_data(data)
    results = []
    for peer in a.peers:
        print(f"== {peer}", flush=True)
        r = run_peer(peer, data, a.work / peer, a.steps, a.peers_dir)
        r["tool"] = {"joey": "Joey NMT 2.3.0", "onmt": "OpenNMT-py 3.5.1"}[peer]
        results.append(r)
    for prec in a.precision:
        print(f"== seqtool {prec}", flush=True)
        results.append(run_seqtool(data, a.work / f"seqtool-{prec}", a.steps, prec))
    lines = ["| tool | params | train tok/s | greedy sent/s | beam-5 sent/s | BLEU greedy / beam5 "
             "| chrF greedy / beam5 |", "|---|---|---|---|---|---|---|"]
    lines += [row(r) for r in results]
    peers = [r for r in results if not r["tool"].startswith("seqtool")]
    if peers:
        fast_train = max(r["tool_tok_s"] for r in peers)
        fast_beam = max(r["beam5"]["sent_s"] for r in peers)
        lines.append("")
        for r in results:
            if r["tool"].startswith("seqtool"):
                lines.append(f"{r['tool']}: training {r['tool_tok_s'] / fast_train:.2f}x the "
                             f"faster peer, beam-5 {r['beam5']['sent_s'] / fast_beam:.2f}x")
    reps = None
    if a.decode_reps and "onmt" in a.peers and "bf16" in a.precision:
        print(f"== beam 5, OpenNMT-py and seqtool bf16 alternately, {a.decode_reps} times",
              flush=True)
        reps = decode_reps(data, a.work, a.peers_dir, a.decode_reps)
        lines.append(f"beam 5 alternately: OpenNMT-py {reps['onmt_sent_s']} sent/s, seqtool "
                     f"bf16 {reps['seqtool_bf16_sent_s']}: ratios {reps['ratios']}, median "
                     f"{reps['median_ratio']:.2f}x")
    treps = None
    if a.train_reps and "onmt" in a.peers and "bf16" in a.precision:
        print(f"== training, OpenNMT-py and seqtool bf16 alternately, {a.train_reps} times",
              flush=True)
        rep_steps = a.rep_steps or a.steps
        treps = train_reps(data, a.work, a.peers_dir, a.train_reps, rep_steps)
        lines.append(f"training alternately ({rep_steps} steps each): OpenNMT-py "
                     f"{treps['onmt_tok_s']} tok/s, seqtool bf16 {treps['seqtool_bf16_tok_s']}: "
                     f"ratios {treps['ratios']}, median {treps['median_ratio']:.2f}x")
    print("\n".join(lines))
    name = "translate_vs_peers_quick.json" if a.quick else "translate_vs_peers.json"
    out = ROOT / "bench" / "results" / name
    out.write_text(json.dumps({"steps": a.steps, "results": results, "decode_reps": reps,
                               "train_reps": treps, "table": lines}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
