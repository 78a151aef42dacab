"""The longer fault runs of issue 17 (tests/test_faults.py and tests/test_bad_input.py
hold the quick ones), written to bench/results/faults.json:

  kill -9   20 kills at random moments of one tiny LM run that writes best/ and last/
            after every step (so many kills land inside a checkpoint write): after
            each, best/ and last/ load and the next --resume continues past the
            checkpoint's step; a last --resume finishes
  signals   SIGINT / SIGTERM mid-run then --resume, bitwise equal to the run without a
            stop, for LM, translation and chat (the cases of tests/test_faults.py)
  bad input every case of tests/test_bad_input.py's table, classified: clean errors,
            answers, tracebacks, wrong exit codes, hangs (120 s), half-written outputs;
            the pickle checkpoints through every command taking --model
  streams   20,000 mixed lines (normal, empty, very long, garbage) through `seqtool
            translate` with the shipped de-en model (and 2,000 for comparison), 2,000
            turns through `seqtool chat` with the shipped chat model: one output line
            per input line (per non-empty turn for chat), in order, and the child's
            peak RSS (wait4)

Usage (repository root, project venv; one run takes ~10 minutes on 2 cores):
  .venv/bin/python bench/faults.py [--kills 20] [--quick]
      [--stages kill_9 bad_input streams signals_resume_bitwise]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

from _common import RESULTS_DIR, machine_info, write_result  # noqa: E402
from faultkit import env, make_data, start, steps_logged, train_args  # noqa: E402


def kill_loop(root: Path, kills: int, seed: int = 0) -> dict[str, Any]:
    from seqtool.checkpoint import load_checkpoint

    rng = random.Random(seed)
    data = make_data(root / "data")
    run, home = root / "killed", root / "home"
    args = train_args("lm", data, run, "--set", "train.epochs=100000", "--set",
                      "train.eval_every=1", "--set", "train.patience=0")  # never stops
    rows = []
    for i in range(kills):
        resumed = (run / "last").exists()
        before = steps_logged(run)
        proc = start(["train", "lm", "--resume", str(run)] if resumed else args, home)
        while steps_logged(run) <= before and proc.poll() is None:  # running again
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.5))
        proc.kill()
        proc.communicate()
        mid_write = sorted(p.name for p in run.iterdir() if ".tmp-" in p.name
                           or ".old-" in p.name)
        loads = {}
        for sub in ("best", "last"):
            try:
                loads[sub] = load_checkpoint(run / sub).config.task == "lm"
            except Exception as exc:  # a lost or broken checkpoint: counted, reported
                loads[sub] = f"{type(exc).__name__}: {exc}"
        step = json.loads((run / "last" / "trainer_state.json").read_text())["global_step"]
        rows.append({"kill": i + 1, "resumed": resumed, "continued_past": before,
                     "logged": steps_logged(run), "last_step": step,
                     "left_mid_write": mid_write, **{f"{k}_loads": v for k, v in loads.items()}})
    step = json.loads((run / "last" / "trainer_state.json").read_text())["global_step"]
    final = subprocess.run([sys.executable, "-m", "seqtool", "train", "lm", "--resume", str(run),
                            "--set", f"train.max_steps={step + 5}", "--json"], env=env(home),
                           capture_output=True, text=True, timeout=300, check=False)
    ok = final.returncode == 0 and json.loads(final.stdout)["steps"] == step + 5
    broken = [r for r in rows if r["best_loads"] is not True or r["last_loads"] is not True]
    continued = [r for r in rows if r["resumed"] and r["logged"] > r["continued_past"]]
    return {"kills": kills, "during_a_write": sum(bool(r["left_mid_write"]) for r in rows),
            "broken_or_lost": len(broken), "resumes": sum(r["resumed"] for r in rows),
            "resumes_continued": len(continued), "final_resume_finished": ok, "rows": rows}


def signals() -> dict[str, Any]:
    """The signal cases of tests/test_faults.py, through pytest (one result per case)."""
    with tempfile.TemporaryDirectory() as d:
        xml = Path(d) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(ROOT / "tests" / "test_faults.py"), "-k", "signal_then_resume",
                        f"--junitxml={xml}"], cwd=ROOT, capture_output=True, timeout=900,
                       check=False)
        import xml.etree.ElementTree as ET

        cases = ET.parse(xml).getroot().iter("testcase")
        return {c.get("name", ""): not any(e.tag in ("failure", "error") for e in c)
                for c in cases}


def bad_input(root: Path) -> dict[str, Any]:
    import test_bad_input as t
    from cli_runner import run_cli

    w = t.build_world(root / "bad")

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, alarm)
    rows = []
    for case in t.CASES:
        signal.alarm(120)
        start_t = time.perf_counter()
        try:
            res = run_cli(*case.args(w), stdin=case.stdin)
            hang = False
        except TimeoutError:
            res, hang = None, True
        finally:
            signal.alarm(0)
        row: dict[str, Any] = {"id": case.id, "expect": case.expect, "hang": hang,
                               "seconds": round(time.perf_counter() - start_t, 2)}
        if res is not None:
            errors = [ln for ln in res.err.splitlines() if ln.startswith("error:")]
            hinted = any(ln.startswith("hint:") for ln in res.err.splitlines())
            row.update(code=res.code, traceback="Traceback" in res.err,
                       clean_error=res.code == 2 and len(errors) == 1 and hinted,
                       answered=res.code == 0,
                       half_written=bool(case.out) and w.out(case.out).exists())
            row["as_expected"] = row["clean_error"] if case.expect == "error" else row["answered"]
        rows.append(row)
    marker = w.root / "PWNED"
    pickles = []
    for name in ("pickle_weights", "pickle_pt", "pickle_pkl"):
        m = w.ckpts[name]
        for args in (["predict", "x", "--model", m], ["generate", "x", "--model", m],
                     ["translate", "x", "--model", m], ["chat", "--model", m],
                     ["evaluate", "lm", "--model", m, "--file", w.data["lm_valid"]],
                     ["evaluate", "chat", "--model", m, "--file", w.data["chat_valid"]],
                     ["evaluate", "translate", "--model", m, "--src-file", w.data["src_valid"],
                      "--ref-file", w.data["tgt_valid"]], ["info", m],
                     ["export", m, w.out("pexp")], ["similar", "x", "--model", m]):
            res = run_cli(*args, stdin="hi\n")
            pickles.append({"checkpoint": name, "command": str(args[0]), "code": res.code,
                            "refused": res.code == 2 and "refusing" in res.err,
                            "executed": marker.exists()})
    done = [r for r in rows if not r["hang"]]
    return {"cases": len(rows),
            "expected_errors": sum(r["expect"] == "error" for r in rows),
            "clean_errors": sum(r.get("clean_error", False) for r in done
                                if r["expect"] == "error"),
            "expected_answers": sum(r["expect"] == "ok" for r in rows),
            "answered": sum(r.get("answered", False) for r in done if r["expect"] == "ok"),
            "tracebacks": sum(r.get("traceback", False) for r in done),
            "wrong_exit_codes": sum(not r["as_expected"] for r in done),
            "hangs": sum(r["hang"] for r in rows),
            "half_written": sum(r.get("half_written", False) for r in done),
            "pickle_attempts": len(pickles), "pickle_refused": sum(p["refused"] for p in pickles),
            "pickles_executed": sum(p["executed"] for p in pickles),
            "rows": rows, "pickles": pickles}


def mixed_lines(n: int, seed: int = 0) -> list[str]:
    """Normal sentences, empty lines, very long lines and garbage, mixed."""
    rng = random.Random(seed)
    normal = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.",
              "Eine Frau liest ein Buch im Park.", "Kinder spielen Fußball auf der Straße."]
    garbage = ["\x00\x01\x02", "😀😀 ‮שלום‬", "%%%% ^^^^ ~~~~", "\x1b[31mrot\x1b[0m", "\t \t"]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.70:
            out.append(rng.choice(normal))
        elif r < 0.80:
            out.append("")
        elif r < 0.85:
            out.append(" ".join(rng.choice(normal) for _ in range(rng.randint(50, 3000))))
        else:
            out.append(rng.choice(garbage))
    return out


def stream(args: list[str], lines: list[str], home: Path, expect: int) -> dict[str, Any]:
    """Run `seqtool ARGS < lines`; output lines, order check, the child's peak RSS."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.txt", Path(d) / "out.txt"
        src.write_text("".join(line + "\n" for line in lines), "utf-8")
        t0 = time.perf_counter()
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            proc = subprocess.Popen([sys.executable, "-m", "seqtool", *args], stdin=fin,
                                    stdout=fout, stderr=subprocess.DEVNULL, env=env(home))
            _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        out = dst.read_bytes().decode("utf-8").split("\n")
    got = len(out) - 1 if out and out[-1] == "" else len(out)
    return {"lines_in": len(lines), "lines_expected": expect, "lines_out": got,
            "exit_code": os.waitstatus_to_exitcode(status), "seconds": round(seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "empty_in_place": all(out[i] == "" for i, x in enumerate(lines) if not x.strip())
            if got == len(lines) else False}


def streams(root: Path, quick: bool) -> dict[str, Any]:
    home = root / "home"
    n = 500 if quick else 20_000
    model = ["translate", "--model", str(ROOT / "checkpoints" / "translate-de-en"), "--beam",
             "1", "--device", "cpu"]
    small = mixed_lines(n // 10)
    big = mixed_lines(n)
    res = {"translate_small": stream(model, small, home, len(small)),
           "translate": stream(model, big, home, len(big))}
    rng = random.Random(1)
    turns = [rng.choice(["hi , how are you ?", "what do you do for a living ?",
                         "i like tea . " * 400, "\x00\x07 😀", "‮שלום‬ friend"])
             for _ in range(200 if quick else 2000)]
    chat = ["chat", "--model", str(ROOT / "checkpoints" / "chat-dailydialog"), "--device",
            "cpu", "--seed", "0"]
    res["chat"] = stream(chat, turns, home, len(turns))
    return res


STAGES: dict[str, Any] = {
    "kill_9": lambda root, a: kill_loop(root, 3 if a.quick else a.kills),
    "bad_input": lambda root, a: bad_input(root),
    "streams": lambda root, a: streams(root, a.quick),
    "signals_resume_bitwise": lambda root, a: {} if a.quick else signals(),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="3 kills, short streams")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES),
                    help="run only these; the others are kept from the result file")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    name = "faults_quick" if a.quick else "faults"
    old = RESULTS_DIR / f"{name}.json"
    result: dict[str, Any] = json.loads(old.read_text()) if old.exists() else {}
    result["machine"] = machine_info()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        os.environ["SEQTOOL_HOME"] = str(root / "home")
        for stage in a.stages:
            result[stage] = STAGES[stage](root, a)
    path = write_result(name, result)
    k, b, s = result["kill_9"], result["bad_input"], result["streams"]
    print("| what | figure |\n| --- | --- |")
    print(f"| kill -9 | {k['kills']} kills ({k['during_a_write']} inside a checkpoint write), "
          f"{k['broken_or_lost']} lost or broken, {k['resumes_continued']}/{k['resumes']} "
          f"resumes continued, final resume finished: {k['final_resume_finished']} |")
    print(f"| bad input | {b['cases']} cases: {b['clean_errors']}/{b['expected_errors']} clean "
          f"errors, {b['answered']}/{b['expected_answers']} answered, {b['tracebacks']} "
          f"tracebacks, {b['wrong_exit_codes']} wrong exit codes, {b['hangs']} hangs, "
          f"{b['half_written']} half-written |")
    print(f"| pickles | {b['pickle_refused']}/{b['pickle_attempts']} refused, "
          f"{b['pickles_executed']} executed |")
    for name, r in s.items():
        print(f"| stream {name} | {r['lines_in']:,} in, {r['lines_out']:,} out (expected "
              f"{r['lines_expected']:,}), exit {r['exit_code']}, {r['seconds']} s, peak RSS "
              f"{r['peak_rss_mb']} MB |")
    for name, ok in result["signals_resume_bitwise"].items():
        print(f"| {name} | {'bitwise equal' if ok else 'FAILED'} |")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
