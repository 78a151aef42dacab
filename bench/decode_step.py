"""The decoding step of the shipped de->en translator (input-feeding GRU +
Bahdanau): layers/fused_step.py (bf16 matrix products with weights cast once,
fp32 elementwise, the memory as (rows, S, K)) against the general step
(RecurrentDecoder.step: torch.gru_cell and the attention module), in one
process, alternating rounds, beam 5 on Multi30k validation sentences in batches
of 1, 8, 16 and 32 (translate_batch, bf16 as the model trained). The general
step is what decoding ran before (the models' `start` then keeps the layout of
init_state).

    target: faster where batches are wide (what the server's batches reach), no
            slower than a few percent for one sentence

    .venv/bin/python bench/decode_step.py [--rounds 3] [--sentences 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpora" / "multi30k"
SIZES = (1, 8, 16, 32)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    args = ap.parse_args(argv)
    import torch

    import seqtool.layers.decoder as decoder_module
    from seqtool.loading import load_translator
    from seqtool.translation import translate_batch

    torch.set_num_threads(args.threads)
    fused = decoder_module.for_decoding
    ways = {"general": lambda decoder, state: state, "fused": fused}
    loaded = load_translator(None, "de", "en")
    with gzip.open(args.corpus / "val.de.gz", "rt", encoding="utf-8") as f:
        lines = [line.strip() for _, line in zip(range(args.sentences), f, strict=False)]
    translate_batch(loaded, lines[:16], loaded.config.search)  # warm up
    rates: dict[tuple[int, str], list[float]] = {}
    for r in range(args.rounds):
        for size in SIZES:
            n = len(lines) if size > 1 else min(len(lines), 48)
            for way in (ways if r % 2 == 0 else dict(reversed(list(ways.items())))):
                decoder_module.for_decoding = ways[way]
                t0 = time.perf_counter()
                for k in range(0, n, size):
                    translate_batch(loaded, lines[k:k + size], loaded.config.search)
                rates.setdefault((size, way), []).append(n / (time.perf_counter() - t0))
    decoder_module.for_decoding = fused
    rows, out = [], {}
    for size in SIZES:
        g, f = (statistics.median(rates[(size, w)]) for w in ("general", "fused"))
        out[str(size)] = {"general_sentences_per_s": g, "fused_sentences_per_s": f,
                          "fused_over_general": f / g}
        rows.append([size, fmt(g, 1), fmt(f, 1), fmt(f / g)])
    print(markdown_table(["sentences per batch", "general step sentences/s",
                          "fused step sentences/s", "fused / general"], rows))
    result = {"machine": machine_info(), "threads": args.threads, "rounds": args.rounds,
              "sentences": len(lines), "sizes": out}
    print("results:", write_result("decode_step", result).relative_to(REPO))
    return result


if __name__ == "__main__":
    main()
