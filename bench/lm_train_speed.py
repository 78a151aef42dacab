"""Training speed of the PTB 2x650 tied LSTM LM: seqtool vs the pytorch/examples recipe.

Target (from the issue): tokens/s for the PTB 2x650 tied LSTM LM (batch 64,
BPTT 35, dropout 0.5), with the achieved GFLOP/s as a fraction of this
machine's matmul peak measured in the same run. Reference: pytorch/examples
word_language_model on that config, 1,785 tokens/s in fp32 (0.76 of the fp32
peak of about 180 GFLOP/s). Goal: at least 2x the reference's tokens/s with
the same perplexity after the same number of tokens.

Configurations (all on the same PTB windows, same seeds, SGD lr 20, clip 0.25):
  reference-fp32          bench/reference_lm.py (the pytorch/examples recipe)
  reference-fp32-malloc   the same, run last, with seqtool's malloc settings
                          (seqtool/runtime.py), to show their share
  seqtool-fp32            seqtool RNNLM (full tied softmax) through seqtool.training.Trainer
  seqtool-bf16            the same under bf16 autocast (TrainConfig.precision = "bf16")
  seqtool-adaptive-bf16   softmax="adaptive", cutoffs (2000, 5000), bf16

FLOPs are counted analytically per token, matmuls only (dropout, pointwise
gate math, softmax exp and the embedding lookup are left out):
  forward multiply-adds per token
    LSTM layer l:     4H * (in_l + H)      (in_0 = E, in_l = H for l > 0)
    projection:       H * E                (only when H != E)
    full softmax:     E * V
    adaptive softmax: E * (c_1 + K)        head (c_1 words + K cluster logits)
                      + sum_i f_i * (E*d_i + d_i*n_i)   tail i, for the fraction f_i
                                           of targets in it (d_i = E / div^i, n_i words)
    adaptive input:   sum_i f_i * d_i*E    tail projections of the input embedding
  forward FLOPs = 2 * multiply-adds; training FLOPs = 3 * forward FLOPs
  (the backward pass costs two matmuls per forward matmul: grad input, grad weight).
For 2x650, V = 10,002: 2*(4*650*1300*2 + 650*V) * 3 = 79.6 MFLOP per token.

Throughput is the steady state: tokens / seconds over the steps after the
first --warmup ones. The training loss is logged as the mean over each
--log-every steps; validation perplexity is on the first --valid-tokens
tokens of ptb.valid (batch 10, BPTT 35, state carried) after the last step.

    .venv/bin/python bench/lm_train_speed.py [--quick] [--steps 200] [--ptb-dir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result
from matmul_peak import measure_peak
from reference_lm import ReferenceLSTMLM, evaluate, train_steps

from seqtool.runtime import keep_freed_memory
from seqtool.config import LMModelConfig, TrainConfig
from seqtool.data.lm import LMData, encode_stream
from seqtool.data.text import read_lines
from seqtool.data.tokenizer import WordTokenizer
from seqtool.models.lm import RNNLM
from seqtool.training import Trainer

CONFIGS = ("reference-fp32", "seqtool-fp32", "seqtool-bf16", "seqtool-adaptive-bf16",
           "reference-fp32-malloc")
ADAPTIVE_CUTOFFS = (2000, 5000)
REFERENCE_TOKENS_PER_S = 1785.0  # the figure for pytorch/examples, fp32


def default_ptb_dir() -> Path:
    corpora = os.environ.get("SEQTOOL_CORPORA")
    shared = Path(__file__).resolve().parents[2] / "shared" / "corpora"  # ../shared/corpora
    return Path(corpora) / "ptb" if corpora else shared / "ptb"


# --------------------------------------------------------------------------- recording
class StepRecorder:
    """A timestamp, loss and cumulative token count per training step.

    Serves as the Trainer's Reporter (with log_every = 1) and as the
    reference loop's on_step callback, so both are timed the same way.
    """

    def __init__(self) -> None:
        self.t0 = 0.0
        self.times: list[float] = []  # seconds since start, at the end of each step
        self.losses: list[float] = []
        self.tokens: list[int] = []  # cumulative
        self.evals: list[dict[str, Any]] = []
        self.trainer: Trainer | None = None

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def record(self, loss: float, tokens: int) -> None:
        self.times.append(time.perf_counter() - self.t0)
        self.losses.append(loss)
        self.tokens.append((self.tokens[-1] if self.tokens else 0) + tokens)

    # Reporter protocol (seqtool.reporting.Reporter)
    def on_start(self, info: dict[str, Any]) -> None:
        self.start()

    def on_step(self, stats: dict[str, Any]) -> None:
        assert self.trainer is not None
        seen = self.trainer.state.tokens_seen
        self.record(float(stats["loss"]), seen - (self.tokens[-1] if self.tokens else 0))

    def on_eval(self, metrics: dict[str, Any]) -> None:
        self.evals.append(metrics)

    def on_end(self, summary: dict[str, Any]) -> None:
        pass


@dataclass
class RunResult:
    name: str
    precision: str
    softmax: str
    params: int
    steps: int
    tokens: int
    warmup_steps: int
    timed_tokens: int
    timed_s: float
    tokens_per_s: float
    flops_per_token: float
    gflops: float
    valid_loss: float
    valid_ppl: float
    final_train_loss: float
    curve: list[dict[str, float]]
    step_s: list[float]
    ratio_vs_reference: float | None = None
    frac_fp32_peak: float | None = None
    frac_bf16_peak: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def summarize(name: str, precision: str, softmax: str, params: int, rec: StepRecorder,
              warmup: int, log_every: int, flops_per_token: float, valid_loss: float
              ) -> RunResult:
    n = len(rec.times)
    w = min(warmup, n - 1)
    t_begin = rec.times[w - 1] if w > 0 else 0.0
    tok_begin = rec.tokens[w - 1] if w > 0 else 0
    timed_s = rec.times[-1] - t_begin
    timed_tokens = rec.tokens[-1] - tok_begin
    tps = timed_tokens / max(timed_s, 1e-9)
    curve = []
    for k in range(0, n, log_every):
        chunk = rec.losses[k: k + log_every]
        end = k + len(chunk)
        curve.append({"step": end, "tokens": rec.tokens[end - 1], "loss": sum(chunk) / len(chunk)})
    step_s = [b - a for a, b in zip([0.0, *rec.times[:-1]], rec.times, strict=False)]
    return RunResult(
        name=name, precision=precision, softmax=softmax, params=params, steps=n,
        tokens=rec.tokens[-1], warmup_steps=w, timed_tokens=timed_tokens, timed_s=timed_s,
        tokens_per_s=tps, flops_per_token=flops_per_token, gflops=flops_per_token * tps / 1e9,
        valid_loss=valid_loss, valid_ppl=math.exp(min(valid_loss, 50.0)),
        final_train_loss=curve[-1]["loss"], curve=curve, step_s=step_s)


# --------------------------------------------------------------------------- FLOPs
def cluster_fractions(stream: Tensor, bounds: list[int]) -> list[float]:
    """Fraction of tokens of `stream` in each [bounds[i], bounds[i+1]) cluster."""
    n = max(stream.numel(), 1)
    return [float(((stream >= lo) & (stream < hi)).sum()) / n
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=False)]


def train_flops_per_token(cfg: LMModelConfig, vocab: int, fractions: list[float]) -> float:
    """Training FLOPs per token (matmuls only): 3 x 2 x forward multiply-adds; see the docstring."""
    e, h = cfg.emb_dim, cfg.hidden
    macs = 0.0
    for layer in range(cfg.layers):
        in_size = e if layer == 0 else h
        macs += 4 * h * (in_size + h)
    if h != e:
        macs += h * e
    if cfg.softmax == "full":
        macs += e * vocab
    else:
        cuts = [c for c in cfg.cutoffs if 0 < c < vocab]
        bounds = [0, *cuts, vocab]
        macs += e * (bounds[1] + len(cuts))  # head
        for i in range(1, len(bounds) - 1):
            d_i = max(1, int(e // cfg.div_value ** i))
            n_i = bounds[i + 1] - bounds[i]
            macs += fractions[i] * (e * d_i + d_i * n_i)  # tail: projection + logits
            macs += fractions[i] * d_i * e  # adaptive input: tail projection
    return 3 * 2 * macs


# --------------------------------------------------------------------------- data
@dataclass
class PTB:
    data: LMData
    vocab: int
    train_tokens: int
    valid_tokens: int


def load_ptb(ptb_dir: Path, batch_size: int, bptt: int, valid_tokens: int) -> PTB:
    train_lines = read_lines(ptb_dir / "ptb.train.txt", "PTB train file")
    valid_lines = read_lines(ptb_dir / "ptb.valid.txt", "PTB valid file")
    tok = WordTokenizer.train(train_lines)
    train = encode_stream(train_lines, tok)
    valid = encode_stream(valid_lines, tok)[:valid_tokens]
    data = LMData(train, valid, batch_size, bptt)
    return PTB(data, tok.vocab_size, train.numel(), valid.numel())


def window_pairs(batches: Iterator[dict[str, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
    return ((b["input"], b["target"]) for b in batches)


def eval_batch_size(data: LMData) -> int:
    return next(data.valid_batches())["input"].shape[1]


# --------------------------------------------------------------------------- runs
def model_config(args: argparse.Namespace, softmax: str = "full") -> LMModelConfig:
    return LMModelConfig(cell="lstm", emb_dim=args.hidden, hidden=args.hidden,
                         layers=args.layers, dropout=args.dropout, tie_weights=True,
                         softmax=softmax, cutoffs=ADAPTIVE_CUTOFFS)


def build_reference(args: argparse.Namespace, vocab: int) -> ReferenceLSTMLM:
    torch.manual_seed(args.seed)
    return ReferenceLSTMLM(vocab, args.hidden, args.hidden, args.layers, args.dropout, tie=True)


def run_reference(args: argparse.Namespace, ptb: PTB, flops: float) -> RunResult:
    model = build_reference(args, ptb.vocab)
    params = sum(p.numel() for p in model.parameters())
    data = ptb.data
    torch.manual_seed(args.seed + 1)  # the same dropout stream as the seqtool runs
    rec = StepRecorder()
    rec.start()
    epoch = 0
    while len(rec.times) < args.steps:
        windows = itertools.islice(data.train_batches(epoch), args.steps - len(rec.times))
        train_steps(model, window_pairs(windows), args.batch_size, args.lr, args.clip,
                    rec.record)
        epoch += 1
    valid_loss = evaluate(model, window_pairs(data.valid_batches()), eval_batch_size(data))
    return summarize("reference-fp32", "fp32", "full", params, rec, args.warmup,
                     args.log_every, flops, valid_loss)


def copy_reference_init(model: RNNLM, ref: ReferenceLSTMLM) -> None:
    """Start seqtool from the reference's initial weights (LSTM always; embedding
    and output bias when the softmax is full)."""
    with torch.no_grad():
        model.rnn.load_state_dict(ref.rnn.state_dict())
        if model.cfg.softmax == "full":
            model.embed.tables[0].weight.copy_(ref.encoder.weight)
            model.out.bias.copy_(ref.decoder.bias)


def run_seqtool(name: str, args: argparse.Namespace, ptb: PTB, precision: str, softmax: str,
                flops: float) -> RunResult:
    mcfg = model_config(args, softmax)
    torch.manual_seed(args.seed)
    model = RNNLM(mcfg, ptb.vocab)
    if args.init == "reference":
        copy_reference_init(model, build_reference(args, ptb.vocab))
    params = sum(p.numel() for p in model.parameters())
    data = ptb.data
    tcfg = TrainConfig(
        epochs=math.ceil(args.steps / data.steps_per_epoch()), max_steps=args.steps,
        batch_size=args.batch_size, bptt=args.bptt, optimizer="sgd", lr=args.lr,
        weight_decay=0.0, clip=args.clip, schedule="constant", patience=0,
        eval_every=args.steps,  # one validation, after the last step
        precision=precision, seed=args.seed, log_every=1)
    torch.manual_seed(args.seed + 1)
    rec = StepRecorder()
    with tempfile.TemporaryDirectory(prefix="seqtool-bench-") as run_dir:
        trainer = Trainer(model, data, tcfg, Path(run_dir), save=lambda name, training: None,
                          reporter=rec, device="cpu")
        rec.trainer = trainer
        trainer.run()
    if not rec.evals:
        raise RuntimeError(f"{name}: the trainer reported no validation")
    valid_loss = float(rec.evals[-1]["valid_loss"])
    res = summarize(name, precision, softmax, params, rec, args.warmup, args.log_every, flops,
                    valid_loss)
    if softmax == "adaptive":
        res.extra["cutoffs"] = list(ADAPTIVE_CUTOFFS)
    return res


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 5 steps, log every step, 2,000 valid tokens, short peak")
    ap.add_argument("--ptb-dir", type=Path, default=default_ptb_dir(),
                    help="folder with ptb.train.txt and ptb.valid.txt "
                         "(default $SEQTOOL_CORPORA/ptb or ../shared/corpora/ptb)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per config (200)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="first steps left out of the tokens/s (10; quick 1)")
    ap.add_argument("--log-every", type=int, default=None, help="loss curve interval (20)")
    ap.add_argument("--valid-tokens", type=int, default=None, help="ptb.valid prefix (20000)")
    ap.add_argument("--peak-seconds", type=float, default=None,
                    help="matmul peak: seconds per dtype, before and after the runs (3)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--hidden", type=int, default=650, help="embedding = hidden size")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=20.0)
    ap.add_argument("--clip", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=1111)
    ap.add_argument("--init", choices=("own", "reference"), default="own",
                    help="seqtool's own initialisation, or the reference's initial weights "
                         "(then seqtool-fp32 should track the reference step for step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None,
                    help="result name under bench/results/ (lm_train_speed[_quick])")
    args = ap.parse_args(argv)
    quick = args.quick
    defaults = {"steps": (200, 5), "warmup": (10, 1), "log_every": (20, 1),
                "valid_tokens": (20000, 2000), "peak_seconds": (3.0, 0.3)}
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    args.out = args.out or ("lm_train_speed_quick" if quick else "lm_train_speed")
    if args.steps < 2:
        ap.error("--steps must be at least 2")
    return args


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)

    log(f"loading PTB from {args.ptb_dir}")
    ptb = load_ptb(args.ptb_dir, args.batch_size, args.bptt, args.valid_tokens)
    fractions = {
        "full": [1.0],
        "adaptive": cluster_fractions(ptb.data.train, [0, *ADAPTIVE_CUTOFFS, ptb.vocab]),
    }
    flops = {s: train_flops_per_token(model_config(args, s), ptb.vocab, fractions[s])
             for s in fractions}

    log("measuring the matmul peak")
    peak_before = {d: measure_peak(d, args.peak_seconds) for d in ("fp32", "bf16")}

    results: list[RunResult] = []
    # In CONFIGS order: the reference runs first, with glibc's default malloc as its
    # users run it; seqtool's Trainer then keeps freed memory (seqtool/runtime.py) for
    # the rest of the process, so reference-fp32-malloc (last) shows what that setting
    # alone gives the reference.
    for name in [c for c in CONFIGS if c in args.configs]:
        log(f"running {name} for {args.steps} steps")
        t0 = time.perf_counter()
        if name.startswith("reference-fp32"):
            if name.endswith("malloc"):
                keep_freed_memory()
            res = run_reference(args, ptb, flops["full"])
            res.name = name
        else:
            softmax = "adaptive" if "adaptive" in name else "full"
            precision = "bf16" if name.endswith("bf16") else "fp32"
            res = run_seqtool(name, args, ptb, precision, softmax, flops[softmax])
        log(f"  {res.tokens_per_s:,.0f} tokens/s, valid ppl {res.valid_ppl:.1f} "
            f"({time.perf_counter() - t0:.1f} s)")
        results.append(res)

    peak_after = {d: measure_peak(d, args.peak_seconds) for d in ("fp32", "bf16")}
    peak = {d: max(peak_before[d], peak_after[d]) for d in peak_before}
    ref = next((r for r in results if r.name == "reference-fp32"), None)
    for r in results:
        r.ratio_vs_reference = r.tokens_per_s / ref.tokens_per_s if ref else None
        r.frac_fp32_peak = r.gflops / peak["fp32"]
        r.frac_bf16_peak = r.gflops / peak["bf16"]

    print(f"## PTB 2x{args.hidden} tied LSTM LM training speed "
          f"(batch {args.batch_size}, BPTT {args.bptt}, dropout {args.dropout}, "
          f"{args.steps} steps, {args.threads} threads{', quick' if args.quick else ''})\n")
    rows = [[r.name, fmt(r.tokens_per_s, 0),
             f"{r.ratio_vs_reference:.2f}x" if r.ratio_vs_reference else "n/a",
             fmt(r.gflops, 1), fmt(r.frac_fp32_peak), fmt(r.frac_bf16_peak),
             fmt(r.final_train_loss, 3), fmt(r.valid_ppl, 1)] for r in results]
    print(markdown_table(["config", "tokens/s", "vs reference", "GFLOP/s", "of fp32 peak",
                          "of bf16 peak", "final train loss", "valid ppl"], rows))
    print(f"\nmatmul peak in this run: fp32 {peak['fp32']:.1f} GFLOP/s, "
          f"bf16 {peak['bf16']:.1f} GFLOP/s (best of before/after: "
          f"fp32 {peak_before['fp32']:.1f}/{peak_after['fp32']:.1f}, "
          f"bf16 {peak_before['bf16']:.1f}/{peak_after['bf16']:.1f})")
    print("training FLOPs per token: "
          + ", ".join(f"{s} softmax {v / 1e6:.1f} M" for s, v in flops.items())
          + f"; vocabulary {ptb.vocab:,}; tokens/s over steps {args.warmup + 1}..{args.steps}")
    if ref:
        print(f"issue's reference figure: {REFERENCE_TOKENS_PER_S:,.0f} tokens/s; goal >= "
              f"{2 * ref.tokens_per_s:,.0f} tokens/s (2x the reference measured here)")

    print(f"\n### Training loss (mean over each {args.log_every} steps)\n")
    curve_rows = []
    for i, point in enumerate(results[0].curve):
        row: list[Any] = [point["step"], fmt(int(point["tokens"]))]
        row += [fmt(r.curve[i]["loss"], 3) if i < len(r.curve) else "" for r in results]
        curve_rows.append(row)
    print(markdown_table(["step", "tokens", *(r.name for r in results)], curve_rows))

    payload: dict[str, Any] = {
        "machine": machine_info(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": {"vocab": ptb.vocab, "train_tokens": ptb.train_tokens,
                 "valid_tokens": ptb.valid_tokens,
                 "steps_per_epoch": ptb.data.steps_per_epoch(),
                 "tokens_per_step": args.batch_size * args.bptt,
                 "adaptive_cluster_fractions": fractions["adaptive"]},
        "peak_gflops": {"used": peak, "before": peak_before, "after": peak_after},
        "flops_per_token": flops,
        "flop_formula": ("3 * 2 * [sum_l 4H(in_l + H) + (H*E if H != E) + E*V (full) | "
                         "E*(c_1 + K) + sum_i f_i*(2*E*d_i + d_i*n_i) (adaptive)]"),
        "reference_tokens_per_s_issue": REFERENCE_TOKENS_PER_S,
        "runs": [asdict(r) for r in results],
    }
    path = write_result(args.out, payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
