"""Dynamic int8 (`--quantize int8`, layers/int8.py) against the path each shipped
model uses today, side by side in one run.

1. Translation, the shipped de->en model on Multi30k test_2016_flickr (all
   1,000 sentences): BLEU and sentences/s of beam 5 and greedy in bf16 (today's
   path: the model trained in bf16), fp32 and int8. The speed ratio is the
   median of --pairs alternating bf16/int8 runs over the whole set.
2. Language model, the shipped WikiText-2 LM: test perplexity in fp32 (today's
   path; the card says 93.09) and int8, tokens/s of both (median ratio of
   --pairs alternating runs over the first --lm-lines test lines).
3. Checkpoint sizes: the shipped folder (fp16), fp32 (computed) and an
   `seqtool export --int8` folder, which is loaded back and checked to give the
   in-memory int8 model's outputs.
4. The kernels, one matrix product of each shape the de->en decoder runs at beam
   5 x batch 64 (320 rows) and of the LM's LSTM input projection: fp32, bf16
   autocast, fbgemm's dynamic int8 (ours; what torch.ao quantize_dynamic uses),
   torch's weight-only int8 (_weight_int8pack_mm) and, where torchao is installed
   (pip install -c constraints.txt -e '.[torchao]'), torchao's
   Int8DynamicActivationInt8Weight and Int8WeightOnly configs.
5. What torch.ao.quantization.quantize_dynamic({nn.Linear, nn.LSTM, nn.GRU})
   leaves in fp32 on the shipped models (it matches module types exactly).

Usage (repository root, project venv; one benchmark at a time on a shared machine,
e.g. under `flock LOCKFILE`):
  .venv/bin/python bench/int8.py [--corpora ../shared/corpora]
      [--pairs 5] [--lm-lines 400] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

ROOT = Path(__file__).resolve().parent.parent


def _gunzip(src: Path, dest: Path) -> Path:
    with gzip.open(src, "rt", encoding="utf-8") as f:
        dest.write_text(f.read(), "utf-8")
    return dest


def _translate(loaded: Any, src: Path, ref: Path, **search: Any) -> dict[str, Any]:
    from seqtool.commands.evaluate import evaluate_translate

    r = evaluate_translate(loaded, src_file=src, ref_file=ref, search=search)
    return {"bleu": r["bleu"], "chrf": r["chrf"], "sentences_per_s": r["sentences_per_s"],
            "seconds": r["seconds"]}


def _lm(loaded: Any, path: Path) -> dict[str, Any]:
    from seqtool.commands.evaluate import evaluate_lm

    t0 = time.perf_counter()
    r = evaluate_lm(loaded, file=path)
    seconds = time.perf_counter() - t0
    return {"perplexity": r["perplexity"], "tokens": r["tokens"], "seconds": seconds,
            "tokens_per_s": r["tokens"] / seconds}


def _alternate(pairs: int, a: Any, b: Any) -> dict[str, Any]:
    """Median of b's speed over a's, runs alternating a, b, a, b, ..."""
    ratios, speeds_a, speeds_b = [], [], []
    for _ in range(pairs):
        sa, sb = a(), b()
        speeds_a.append(sa)
        speeds_b.append(sb)
        ratios.append(sb / sa)
    return {"ratio_median": statistics.median(ratios), "ratios": ratios,
            "a": speeds_a, "b": speeds_b}


def translation(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from seqtool.loading import load_translator

    corpus = Path(a.corpora) / "multi30k"
    src = _gunzip(corpus / "test_2016_flickr.de.gz", tmp / "test.de")
    ref = _gunzip(corpus / "test_2016_flickr.en.gz", tmp / "test.en")
    today = load_translator(None, "de", "en")  # bf16 (precision auto: the training's)
    int8 = load_translator(None, "de", "en", quantize="int8")
    _translate(today, src, ref, beam_size=1)  # warm-up (allocator, tokenizer)
    _translate(int8, src, ref, beam_size=1)
    rows = {}
    for beam in (5, 1):
        rows[f"beam{beam}"] = {
            "bf16": _translate(today, src, ref, beam_size=beam),
            "fp32": _translate(today, src, ref, beam_size=beam, precision="fp32"),
            "int8": _translate(int8, src, ref, beam_size=beam)}
    rows["beam5_alternating"] = _alternate(
        a.pairs, lambda: _translate(today, src, ref, beam_size=5)["sentences_per_s"],
        lambda: _translate(int8, src, ref, beam_size=5)["sentences_per_s"])
    return rows


def language_model(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from seqtool.loading import load_lm

    test = Path(a.corpora) / "wikitext-2" / "test.txt"
    part = tmp / "test-part.txt"
    part.write_text("".join(test.read_text("utf-8").splitlines(True)[: a.lm_lines]), "utf-8")
    today, int8 = load_lm(None), load_lm(None, quantize="int8")
    from seqtool.data.cache import cached_token_stream

    cached_token_stream(test, today.tokenizer)  # tokenised once, before any timing
    cached_token_stream(part, today.tokenizer)
    rows = {"fp32": _lm(today, test), "int8": _lm(int8, test)}
    rows["alternating"] = _alternate(a.pairs, lambda: _lm(today, part)["tokens_per_s"],
                                     lambda: _lm(int8, part)["tokens_per_s"])
    return rows


def sizes(tmp: Path) -> dict[str, Any]:
    """Folder sizes: shipped (fp16), fp32 (parameters x 4 + the other files), int8
    export; and the export loaded back against the in-memory int8 model."""
    import torch

    from seqtool.commands.info import export_checkpoint
    from seqtool.loading import load_lm, load_translator, shipped_model

    out: dict[str, Any] = {}
    for name, load in (("translate-de-en", lambda p, q: load_translator(p, quantize=q)),
                       ("lm-wikitext2", lambda p, q: load_lm(p, quantize=q))):
        folder = shipped_model(name)
        shipped = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        weights = (folder / "model.safetensors").stat().st_size
        fp32_model = load(folder, None).model
        tensors = {t.data_ptr(): t for t in fp32_model.state_dict().values()}  # ties once
        fp32_bytes = sum(t.numel() * 4 for t in tensors.values())
        dest = tmp / f"{name}-int8"
        int8_size = export_checkpoint(folder, dest, int8=True)
        back, mem = load(dest, None).model, load(folder, "int8").model
        same = _same_outputs(back, mem, torch)
        out[name] = {"shipped_fp16_bytes": shipped, "fp32_bytes": shipped - weights + fp32_bytes,
                     "int8_bytes": int8_size, "export_equals_in_memory": same}
    return out


def _same_outputs(a: Any, b: Any, torch: Any) -> bool:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if a.kind == "lm":
            ids = torch.randint(0, 30000, (20, 8), generator=g)
            return bool(torch.equal(a.log_probs(ids)[0], b.log_probs(ids)[0]))
        src = torch.randint(4, 7000, (12, 8), generator=g)
        sa, ta = a.start({"src": src})
        sb, tb = b.start({"src": src})
        return bool(torch.equal(a.step(ta, sa)[0], b.step(tb, sb)[0]))


def _timed(f: Any, reps: int) -> float:
    """Mean microseconds per call of f() after 5 warm-up calls."""
    for _ in range(5):
        f()
    t0 = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t0) / reps * 1e6


def _kernel_row(m: int, k: int, n: int, reps: int) -> dict[str, float]:
    """One product (m, k) x (k, n) by every kernel."""
    import torch
    from torch.nn import functional as F

    from seqtool.layers.int8 import Int8Linear

    x, lin = torch.randn(m, k), torch.nn.Linear(k, n)
    q = Int8Linear.from_weight(lin.weight, lin.bias)
    xb, sb = x.bfloat16(), q.scale.bfloat16()
    row = {"fp32": _timed(lambda: F.linear(x, lin.weight, lin.bias), reps)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        row["bf16"] = _timed(lambda: F.linear(x, lin.weight, lin.bias), reps)
    row["int8 fbgemm dynamic (ours)"] = _timed(lambda: q(x), reps)
    row["int8 weight-only (torch)"] = _timed(
        lambda: torch._weight_int8pack_mm(xb, q.qweight, sb), reps)
    try:
        from torchao.quantization import (Int8DynamicActivationInt8WeightConfig,
                                          Int8WeightOnlyConfig, quantize_)
    except ImportError:
        return row
    for name, cfg, xin in (("torchao int8 dynamic", Int8DynamicActivationInt8WeightConfig(), x),
                           ("torchao int8 weight-only", Int8WeightOnlyConfig(), xb)):
        ao = copy.deepcopy(lin) if xin is x else copy.deepcopy(lin).bfloat16()
        quantize_(ao, cfg)
        with torch.no_grad():
            row[name] = _timed(lambda ao=ao, xin=xin: ao(xin), reps)
    return row


def kernels(reps: int) -> dict[str, Any]:
    shapes = {"output 256->8000": (320, 256, 8000), "GRU input 768->1536": (320, 768, 1536),
              "GRU hidden 512->1536": (320, 512, 1536), "combine 1024->512": (320, 1024, 512),
              "LM LSTM input 512->2048 (350 rows)": (350, 512, 2048)}
    return {label: _kernel_row(m, k, n, reps) for label, (m, k, n) in shapes.items()}


def ao_coverage() -> dict[str, Any]:
    """fp32 matrices torch.ao quantize_dynamic leaves in each shipped model."""
    import torch

    from seqtool.layers.int8 import fp32_parts, quantize_model
    from seqtool.loading import load_chatbot, load_lm, load_translator

    out = {}
    for name, loaded in (("lm-wikitext2", load_lm(None)),
                         ("translate-de-en", load_translator(None, "de", "en")),
                         ("chat-dailydialog", load_chatbot(None))):
        ao = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(loaded.model), {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU},
            dtype=torch.qint8)
        ours = quantize_model(copy.deepcopy(loaded.model))
        out[name] = {"fp32_total": len(fp32_parts(loaded.model)),
                     "fp32_left_quantize_dynamic": fp32_parts(ao),
                     "fp32_left_ours": fp32_parts(ours)}
    return out


def report(res: dict[str, Any]) -> None:
    t = res["translation"]
    rows = []
    for beam in ("beam5", "beam1"):
        for path in ("bf16", "fp32", "int8"):
            r = t[beam][path]
            rows.append([beam, path, fmt(r["bleu"]), fmt(r["chrf"]),
                         fmt(r["sentences_per_s"], 1)])
    print(markdown_table(["search", "path", "BLEU", "chrF", "sent/s"], rows))
    alt = t["beam5_alternating"]
    print(f"\nbeam 5, int8 / bf16 sentences/s, alternating: median {alt['ratio_median']:.2f}x "
          f"({', '.join(f'{r:.2f}' for r in alt['ratios'])})")
    lm = res["lm"]
    print(markdown_table(["LM path", "test perplexity", "tokens/s"],
                         [[p, fmt(lm[p]["perplexity"]), fmt(lm[p]["tokens_per_s"], 0)]
                          for p in ("fp32", "int8")]))
    alt = lm["alternating"]
    print(f"\nLM int8 / fp32 tokens/s, alternating: median {alt['ratio_median']:.2f}x "
          f"({', '.join(f'{r:.2f}' for r in alt['ratios'])})")
    print(markdown_table(["model", "shipped (fp16)", "fp32", "int8 export", "export == memory"],
                         [[k, fmt(v["shipped_fp16_bytes"] / 1e6, 1), fmt(v["fp32_bytes"] / 1e6, 1),
                           fmt(v["int8_bytes"] / 1e6, 1), v["export_equals_in_memory"]]
                          for k, v in res["sizes"].items()]))
    names = list(next(iter(res["kernels"].values())))
    print(markdown_table(["shape (us)", *names],
                         [[k, *(fmt(v.get(n), 0) for n in names)]
                          for k, v in res["kernels"].items()]))
    for k, v in res["ao_coverage"].items():
        print(f"{k}: {v['fp32_total']} fp32 matrices; quantize_dynamic leaves "
              f"{len(v['fp32_left_quantize_dynamic'])} {v['fp32_left_quantize_dynamic']}; "
              f"ours leaves {v['fp32_left_ours']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--lm-lines", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--kernel-reps", type=int, default=100)
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    res: dict[str, Any] = {"machine": machine_info()}
    with tempfile.TemporaryDirectory() as tmp:
        res["kernels"] = kernels(a.kernel_reps)
        res["translation"] = translation(a, Path(tmp))
        res["lm"] = language_model(a, Path(tmp))
        res["sizes"] = sizes(Path(tmp))
        res["ao_coverage"] = ao_coverage()
    path = write_result("int8", res)
    report(res)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
