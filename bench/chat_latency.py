"""Reply latency of a chat model: the time of one `ChatSession.reply` (tokenizing the
turn, encoding the context, decoding the reply), median over 20 turns of one
conversation, after one untimed warm-up turn.

    target: a reply in < 300 ms on the 2-core dev CPU for the shipped model

The turns are everyday English lines in DailyDialog's tokenized style; the
conversation's own replies join the context, as in `seqtool chat`. Decoding is
the chat default (sampling, T 0.8, top-p 0.9, one reply) unless --greedy or
--samples N. The model is loaded once; its load time is reported apart.

    .venv/bin/python bench/chat_latency.py [--model PATH] [--turns 20] [--threads 2]
                                           [--samples 1] [--greedy] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, markdown_table, write_result

TARGET_MS = 300.0
TURNS = [
    "Hi , how are you doing today ?",
    "I'm looking for a birthday present for my sister .",
    "She likes reading and going to the cinema .",
    "How much would a good book cost ?",
    "That sounds fine . Where is the nearest bookshop ?",
    "Is it open on Sundays ?",
    "What about the cinema ? Do you know any good films ?",
    "I don't like horror films very much .",
    "Maybe a comedy then . What time does it start ?",
    "Can we have dinner before the film ?",
    "I'd like something light , maybe a salad .",
    "Do you think it will rain tonight ?",
    "Then I should take an umbrella .",
    "By the way , how is your new job ?",
    "Is your boss nice to you ?",
    "That's great . I'm happy for you .",
    "Let's meet at six in front of the station .",
    "Don't be late this time !",
    "OK , see you then .",
    "Thank you very much for your help .",
    "Goodbye !",
]


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="chat checkpoint or run folder (default: the shipped model)")
    ap.add_argument("--turns", type=int, default=20, help="timed turns")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--samples", type=int, default=1, help="replies per turn")
    ap.add_argument("--greedy", action="store_true", help="greedy words instead of sampling")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 turns")
    args = ap.parse_args(argv)

    import torch

    from seqtool.commands.chat import ChatSession, ChatSettings
    from seqtool.loading import load_chatbot

    torch.set_num_threads(args.threads)
    turns = 3 if args.quick else args.turns
    t0 = time.perf_counter()
    loaded = load_chatbot(args.model)
    load_s = time.perf_counter() - t0
    m = loaded.config.model
    settings = ChatSettings(samples=args.samples, context=m.context_turns,
                            greedy=args.greedy, max_len=m.max_utt_len)
    session = ChatSession(loaded, settings, seed=args.seed)
    lines = [TURNS[i % len(TURNS)] for i in range(turns + 1)]
    times_ms, lengths = [], []
    with torch.inference_mode():
        session.reply(lines[0])  # warm-up (first-call allocations)
        for line in lines[1:]:
            t = time.perf_counter()
            turn = session.reply(line)
            times_ms.append((time.perf_counter() - t) * 1000)
            lengths.append(len(turn.replies[0].split()))
    median = statistics.median(times_ms)
    p90 = sorted(times_ms)[max(0, round(0.9 * len(times_ms)) - 1)]
    ok = median < TARGET_MS
    print(f"## Chat reply latency ({turns} turns{', quick' if args.quick else ''}, "
          f"{args.threads} threads)\n")
    rows = [[str(loaded.folder), m.arch, fmt(median, 1), fmt(p90, 1), fmt(min(times_ms), 1),
             fmt(statistics.mean(lengths), 1), fmt(load_s, 2),
             f"< {TARGET_MS:.0f} ms: {'PASS' if ok else 'FAIL'}"]]
    print(markdown_table(["model", "arch", "median ms", "p90 ms", "min ms", "reply words",
                          "load s", "target"], rows, "llrrrrrl"))
    payload: dict[str, object] = {
        "machine": machine_info(), "quick": args.quick, "model": str(loaded.folder),
        "arch": m.arch, "samples": args.samples, "greedy": args.greedy,
        "threads": args.threads, "load_s": load_s, "times_ms": times_ms,
        "median_ms": median, "p90_ms": p90, "reply_words": lengths,
        "target_ms": TARGET_MS, "pass": ok}
    path = write_result("chat_latency" + ("_quick" if args.quick else ""), payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
