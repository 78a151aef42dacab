"""The bad-input suite: every subcommand fed broken files, odd text, bad numbers,
broken configs and tampered or crafted checkpoints. Each case is a row of CASES:
either a clean user error (exit 2, one `error:` line, a `hint:`, no traceback,
no half-written output) or, for valid input with odd characters, an answer
(exit 0, no traceback). Item 4 (pickles never run) and the stream limits are
here too; bench/faults.py runs the 20,000-line streams."""

from __future__ import annotations

import json
import resource
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Result, assert_user_error, run_cli
from faultkit import KINDS, make_data, pickle_bomb, train_args

from seqtool.checkpoint import CONFIG_FILE, WEIGHTS_FILE

ODD = "the\x00cat\n\x01\x02\x1b[31mred\nemoji 😀 ok\nשלום עולם the\n\ufeffthe dog\r\n"


@dataclass
class World:
    root: Path
    data: dict[str, Path]
    runs: dict[str, Path]
    files: dict[str, Path]
    ckpts: dict[str, Path]

    def out(self, name: str) -> Path:
        return self.root / "outs" / name


def _bad_files(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True)
    f = {"missing": d / "missing.txt", "dir": d / "folder"}
    f["dir"].mkdir()
    raw = {"empty": b"", "binary": bytes(range(256)) * 8, "latin1": "caf\xe9 au lait\n".encode(
        "latin-1"), "utf16": "the cat sat\n".encode("utf-16"),
        "bom": "\ufeffthe cat sat on the mat\nthe dog ran\n".encode(),
        "crlf": b"the cat sat on the mat\r\nthe dog ran to the ball\r\n" * 30,
        "long": b"the cat " * (10 * 2**20 // 8) + b"\n",  # a 10 MB single line
        "toml_type": b'task = "lm"\n[train]\nlr = "fast"\n',
        "toml_range": b'task = "lm"\n[train]\nlr = -1.0\n',
        "toml_key": b'task = "lm"\n[train]\nlearning_rate = 0.1\n',
        "toml_table": b'task = "lm"\n[trian]\nlr = 0.1\n',
        "toml_syntax": b'task = "lm"\n[train\nlr = 0.1\n',
        "ref_short": b"one line\n"}
    for name, content in raw.items():
        f[name] = d / f"{name}.txt"
        f[name].write_bytes(content)
    return f


def _crafted(run: Path, d: Path, marker: Path) -> dict[str, Path]:
    """Tampered copies of the LM run's best/ checkpoint."""
    src = run / "best"

    def copy(name: str) -> Path:
        shutil.copytree(src, d / name)
        return d / name

    c: dict[str, Path] = {}
    c["truncated"] = copy("truncated")
    w = c["truncated"] / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    c["shapes"] = copy("shapes")
    meta = json.loads((c["shapes"] / CONFIG_FILE).read_text())
    meta["model"]["hidden"] = 12
    (c["shapes"] / CONFIG_FILE).write_text(json.dumps(meta))
    c["junk_tok"] = copy("junk_tok")
    (c["junk_tok"] / "tokenizer.json").write_bytes(b"\x00\xffjunk{")
    c["junk_config"] = copy("junk_config")
    (c["junk_config"] / CONFIG_FILE).write_text("{not json")
    c["newer"] = copy("newer")
    meta = json.loads((c["newer"] / CONFIG_FILE).read_text())
    meta["format_version"] = 99
    (c["newer"] / CONFIG_FILE).write_text(json.dumps(meta))
    c["traversal"] = copy("traversal")
    (c["traversal"] / "tokenizer.json").write_text(json.dumps(
        {"kind": "unigram", "model_file": "../../../../etc/passwd"}))
    c["config_paths"] = copy("config_paths")  # names files outside: never opened by a load
    meta = json.loads((c["config_paths"] / CONFIG_FILE).read_text())
    meta["tokenizer"]["path"] = "../../../../etc"
    meta["data"]["train_file"] = "/etc/shadow"
    (c["config_paths"] / CONFIG_FILE).write_text(json.dumps(meta))
    outside = d / "outside.safetensors"
    shutil.copy(src / WEIGHTS_FILE, outside)
    c["symlink"] = copy("symlink")
    (c["symlink"] / WEIGHTS_FILE).unlink()
    (c["symlink"] / WEIGHTS_FILE).symlink_to(outside)
    c["pickle_weights"] = copy("pickle_weights")
    (c["pickle_weights"] / WEIGHTS_FILE).write_bytes(pickle_bomb(marker))
    c["pickle_pt"] = copy("pickle_pt")
    (c["pickle_pt"] / "model.pt").write_bytes(pickle_bomb(marker))
    c["pickle_pkl"] = copy("pickle_pkl")
    (c["pickle_pkl"] / "extra.pkl").write_bytes(pickle_bomb(marker))
    return c


@pytest.fixture(scope="module")
def w(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("bad"))


def build_world(root: Path) -> World:
    """Tiny runs of each kind, the bad files and the crafted checkpoints under `root`."""
    data = make_data(root / "data")
    runs = {}
    for kind in KINDS:
        runs[kind] = root / kind
        res = run_cli(*train_args(kind, data, runs[kind], "--set", "train.epochs=1",
                                  "--set", "train.log_every=100"))
        assert res.code == 0, res.err
    return World(root, data, runs, _bad_files(root / "files"),
                 _crafted(runs["lm"], root / "ckpts", root / "PWNED"))


Args = Callable[[World], list[Any]]


@dataclass
class Case:
    id: str
    args: Args
    stdin: str | bytes | None = None
    expect: str = "error"  # or "ok"
    words: tuple[str, ...] = ()
    out: str = ""  # name of an --out that must not exist afterwards
    lines: int = -1  # "ok": the exact number of output lines


def lm(w: World) -> list[Any]:
    return ["--model", w.runs["lm"]]


def tr(w: World) -> list[Any]:
    return ["--model", w.runs["translate"]]


def ch(w: World) -> list[Any]:
    return ["--model", w.runs["chat"]]


def train_lm(w: World, train: str, valid: str | None = None, *extra: str) -> list[Any]:
    return ["train", "lm", "--train-file", w.files.get(train, train),
            "--valid-file", w.files[valid] if valid else w.data["lm_valid"],
            "--config", "lm-tiny", *extra, "--out", w.out(f"lm-{train}-{valid}")]


FILE_KINDS = ("missing", "empty", "dir", "binary", "latin1", "utf16")
CASES: list[Case] = []
# --- files: train lm, tokenizer train, evaluate lm/translate/chat, translate --reference
for kind in FILE_KINDS:
    CASES += [
        Case(f"train-lm-{kind}", lambda w, k=kind: train_lm(w, k), out=f"lm-{kind}-None"),
        Case(f"tokenizer-{kind}", lambda w, k=kind: ["tokenizer", "train", "--file", w.files[k],
                                                    "--kind", "word", "--out", w.out("tok")],
             out="tok"),
        Case(f"evaluate-lm-{kind}", lambda w, k=kind: ["evaluate", "lm", *lm(w), "--file",
                                                      w.files[k]]),
        Case(f"evaluate-translate-{kind}", lambda w, k=kind: [
            "evaluate", "translate", *tr(w), "--src-file", w.files[k], "--ref-file",
            w.data["tgt_valid"]]),
        Case(f"evaluate-chat-{kind}", lambda w, k=kind: ["evaluate", "chat", *ch(w), "--file",
                                                        w.files[k]]),
    ]
CASES += [
    Case("train-lm-valid-binary", lambda w: train_lm(w, str(w.data["lm_train"]), "binary")),
    Case("train-translate-misaligned", lambda w: [
        "train", "translate", "--train-src", w.data["src_train"], "--train-tgt",
        w.data["tgt_valid"], "--valid-src", w.data["src_valid"], "--valid-tgt",
        w.data["tgt_valid"], "--config", "translate-tiny", "--out", w.out("mis")],
        words=("lines",), out="mis"),
    Case("evaluate-translate-misaligned", lambda w: [
        "evaluate", "translate", *tr(w), "--src-file", w.data["src_train"], "--ref-file",
        w.data["tgt_valid"]], words=("lines",)),
    Case("translate-reference-misaligned", lambda w: ["translate", *tr(w), "--reference",
                                                      w.files["ref_short"]],
         stdin="the cat\na dog\nthe sun\n"),
    Case("train-chat-utf16", lambda w: ["train", "chat", "--train-file", w.files["utf16"],
                                        "--config", "chat-tiny", "--out", w.out("c16")],
         out="c16"),
    Case("corpus-import-missing", lambda w: ["corpus", "import", "ptb", "--from",
                                             w.files["missing"]]),
    Case("corpus-import-unknown", lambda w: ["corpus", "import", "no-such-corpus", "--from",
                                             w.files["dir"]], words=("unknown",)),
    Case("plot-not-a-run", lambda w: ["plot", w.files["dir"]]),
    Case("info-file", lambda w: ["info", w.files["binary"]]),
    Case("similar-vectors-binary", lambda w: ["similar", "cat", "--vectors",
                                              w.files["binary"]]),
    # valid files with a BOM or CRLF line ends work
    Case("train-lm-bom-crlf", lambda w: train_lm(w, "crlf", "bom", "--set", "train.epochs=1",
                                                 "--set", "model.hidden=8"), expect="ok"),
    Case("tokenizer-bom", lambda w: ["tokenizer", "train", "--file", w.files["bom"], "--kind",
                                     "word", "--out", w.out("tokbom")], expect="ok"),
    Case("evaluate-lm-crlf", lambda w: ["evaluate", "lm", *lm(w), "--file", w.files["crlf"]],
         expect="ok"),
    # a 10 MB single line
    Case("evaluate-lm-10mb-line", lambda w: ["evaluate", "lm", *lm(w), "--file",
                                             w.files["long"]], expect="ok"),
    Case("translate-10mb-line", lambda w: ["translate", *tr(w)],
         stdin="the cat " * (10 * 2**20 // 8) + "\nthe dog\n", expect="ok", lines=2,
         words=("over the limit",)),
    Case("predict-10mb-line", lambda w: ["predict", *lm(w)],
         stdin="the cat " * (10 * 2**20 // 8) + "\n", expect="ok", lines=1),
]
# --- odd text on stdin: an answer per line, exit 0
CASES += [
    Case("predict-odd-stdin", lambda w: ["predict", *lm(w)], stdin=ODD, expect="ok", lines=5),
    Case("generate-odd-stdin", lambda w: ["generate", *lm(w), "--max-tokens", "3"], stdin=ODD,
         expect="ok", lines=5),
    Case("translate-odd-stdin", lambda w: ["translate", *tr(w)], stdin=ODD, expect="ok",
         lines=5),
    Case("chat-odd-stdin", lambda w: ["chat", *ch(w)], stdin=ODD, expect="ok", lines=5),
    Case("translate-100k-prompt", lambda w: ["translate", "the cat " * 12500, *tr(w)],
         expect="ok", lines=1, words=("over the limit",)),
    Case("predict-100k-prompt", lambda w: ["predict", "the cat " * 12500, *lm(w), "--json"],
         expect="ok", words=("over the limit",)),
    Case("generate-100k-prompt", lambda w: ["generate", "the cat " * 12500, *lm(w),
                                            "--max-tokens", "2"], expect="ok",
         words=("over the limit",)),
    Case("predict-100k-stdin", lambda w: ["predict", *lm(w)], stdin="the cat " * 12500 + "\n",
         expect="ok", lines=1, words=("line 1: the prompt is over the limit",)),
    Case("chat-100k-prompt", lambda w: ["chat", *ch(w)], stdin="hello " * 20000 + "\n",
         expect="ok", lines=1),
    Case("translate-stdin-latin1", lambda w: ["translate", *tr(w)], stdin=b"caf\xe9\n",
         words=("not UTF-8",)),
    Case("chat-stdin-latin1", lambda w: ["chat", *ch(w)], stdin=b"caf\xe9\n",
         words=("not UTF-8",)),
    Case("predict-stdin-latin1", lambda w: ["predict", *lm(w)], stdin=b"caf\xe9\n",
         words=("not UTF-8",)),
    Case("predict-empty-prompt", lambda w: ["predict", "", *lm(w)]),
]
# --- numbers: nan / negative / zero for numeric flags
NUMERIC = [
    ("predict", lm, "--top-k", ("0", "-1", "nan")), ("predict", lm, "--batch-size", ("0",)),
    ("predict", lm, "--read-ahead", ("-1",)),
    ("generate", lm, "--max-tokens", ("-1", "nan")),
    ("generate", lm, "--temperature", ("nan", "-1", "0")), ("generate", lm, "--top-p", ("nan",
                                                                                       "-0.5")),
    ("generate", lm, "--num", ("0",)),
    ("translate", tr, "--beam", ("0", "nan")), ("translate", tr, "--nbest", ("-1",)),
    ("translate", tr, "--alpha", ("nan",)), ("translate", tr, "--max-len-ratio", ("nan", "-1")),
    ("translate", tr, "--batch-size", ("0",)), ("translate", tr, "--read-ahead", ("-5",)),
    ("translate", tr, "--no-repeat-ngram", ("-1",)),
    ("chat", ch, "--samples", ("0", "-1")), ("chat", ch, "--temperature", ("nan", "-1")),
    ("chat", ch, "--top-p", ("nan", "0")), ("chat", ch, "--context", ("-1",)),
    ("chat", ch, "--max-len", ("0",)),
]
for cmd, model, flag, values in NUMERIC:
    for v in values:
        CASES.append(Case(f"{cmd}{flag}={v}", lambda w, c=cmd, m=model, f=flag, v=v:
                          [c, *m(w), f, v], stdin="the cat\n", words=(flag,)))
CASES += [
    Case("evaluate-lm-batch-size=0", lambda w: ["evaluate", "lm", *lm(w), "--file",
                                                w.data["lm_valid"], "--batch-size", "0"]),
    Case("evaluate-chat-limit=-1", lambda w: ["evaluate", "chat", *ch(w), "--file",
                                              w.data["chat_valid"], "--limit", "-1"]),
    Case("train-lm-threads=-1", lambda w: [*train_lm(w, str(w.data["lm_train"]))[:-2],
                                           "--threads", "-1", "--out", w.out("thr")],
         out="thr"),
    Case("evaluate-chat-max-len=0", lambda w: ["evaluate", "chat", *ch(w), "--file",
                                               w.data["chat_valid"], "--max-len", "0"]),
    Case("evaluate-translate-batch-size=0", lambda w: [
        "evaluate", "translate", *tr(w), "--src-file", w.data["src_valid"], "--ref-file",
        w.data["tgt_valid"], "--batch-size", "0"]),
    Case("evaluate-translate-beam=0", lambda w: [
        "evaluate", "translate", *tr(w), "--src-file", w.data["src_valid"], "--ref-file",
        w.data["tgt_valid"], "--beam", "0"], words=("--beam",)),
    Case("evaluate-chat-temperature=nan", lambda w: [
        "evaluate", "chat", *ch(w), "--file", w.data["chat_valid"], "--sample",
        "--temperature", "nan"]),
    Case("evaluate-chat-top-p=2", lambda w: [
        "evaluate", "chat", *ch(w), "--file", w.data["chat_valid"], "--sample", "--top-p", "2"]),
    Case("evaluate-chat-batch-size=0", lambda w: [
        "evaluate", "chat", *ch(w), "--file", w.data["chat_valid"], "--batch-size", "0"]),
    Case("generate-top-k=-1", lambda w: ["generate", "the", *lm(w), "--top-k", "-1"]),
    Case("generate-seed=nan", lambda w: ["generate", "the", *lm(w), "--seed", "nan"]),
    *[Case(f"word2vec-{flag}={v}", lambda w, f=flag, v=v: [
        "train", "word2vec", "--train-file", w.data["lm_train"], f"--{f}", v, "--out",
        w.out(f"w2v-{f}")], out=f"w2v-{flag}")
      for flag, v in (("dim", "0"), ("window", "-1"), ("negative", "-1"), ("epochs", "0"),
                      ("alpha", "nan"), ("sample", "-1"), ("min-count", "-1"))],
    Case("average-last=0", lambda w: ["average", w.runs["lm"], "--last", "0", "--out",
                                      w.out("avg")], out="avg"),
]
# --- configs: TOML files and --set
for name in ("toml_type", "toml_range", "toml_key", "toml_table", "toml_syntax"):
    CASES.append(Case(f"train-config-{name}", lambda w, n=name: [
        "train", "lm", "--train-file", w.data["lm_train"], "--config", w.files[n], "--out",
        w.out(f"cfg-{n}")], out=f"cfg-{name}"))
for text, word in (("train.lr=abc", "lr"), ("train.lr=nan", "lr"), ("train.lr=-1", "lr"),
                   ("train.epochs=0", "epochs"), ("train.batch_size=-4", "batch_size"),
                   ("train.dropuot=0.1", "dropuot"), ("model.hidden=1e9x", "hidden"),
                   ("nokey", "table.key"), ("model.cell=transformer", "cell"),
                   ("train.clip=inf", "clip")):
    CASES.append(Case(f"set-{text}", lambda w, t=text: [
        *train_lm(w, str(w.data["lm_train"]))[:-2], "--set", t, "--out", w.out("set")],
        words=(word,), out="set"))
# --- checkpoints: damaged, crafted, another kind
for name in ("truncated", "shapes", "junk_tok", "junk_config", "newer", "traversal",
             "symlink"):
    CASES += [Case(f"predict-ckpt-{name}", lambda w, n=name: ["predict", "the cat", "--model",
                                                             w.ckpts[n]]),
              Case(f"info-ckpt-{name}", lambda w, n=name: ["info", w.ckpts[n]])]
CASES += [
    Case("predict-ckpt-config-paths-outside", lambda w: ["predict", "the cat", "--model",
                                                         w.ckpts["config_paths"]], expect="ok"),
    Case("translate-with-lm", lambda w: ["translate", "the cat", *lm(w)], words=("'lm'",)),
    Case("chat-with-translate", lambda w: ["chat", *tr(w)], stdin="hi\n",
         words=("'translate'",)),
    Case("predict-with-chat", lambda w: ["predict", "the cat", *ch(w)], words=("'chat'",)),
    Case("evaluate-lm-with-translate", lambda w: ["evaluate", "lm", *tr(w), "--file",
                                                  w.data["lm_valid"]]),
    Case("resume-not-a-run", lambda w: ["train", "lm", "--resume", w.files["dir"]]),
    Case("export-missing", lambda w: ["export", w.files["missing"], w.out("exp")], out="exp"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, w: World) -> None:
    res = run_cli(*case.args(w), stdin=case.stdin)
    assert "Traceback" not in res.err, res.err
    if case.expect == "error":
        assert_user_error(res, *case.words)
    else:
        assert res.code == 0, res.err
        assert all(word in res.err for word in case.words), res.err
        if case.lines >= 0:
            assert len(res.out.splitlines()) == case.lines, res.out[:500]
    if case.out:
        assert not w.out(case.out).exists(), f"{case.out} written half"


def test_at_least_60_cases() -> None:
    assert len([c for c in CASES if c.expect == "error"]) >= 60, len(CASES)


def test_pickle_refused_by_every_model_command(w: World) -> None:
    """A folder with a pickle payload (a .pt, a .pkl, a torch.save model.safetensors)
    is refused by every command taking --model (or a checkpoint), and the payload
    never runs."""
    marker = w.root / "PWNED"
    uses = [lambda m: ["predict", "the cat", "--model", m],
            lambda m: ["generate", "the", "--model", m],
            lambda m: ["translate", "the cat", "--model", m],
            lambda m: ["chat", "--model", m],
            lambda m: ["evaluate", "lm", "--model", m, "--file", w.data["lm_valid"]],
            lambda m: ["evaluate", "translate", "--model", m, "--src-file",
                       w.data["src_valid"], "--ref-file", w.data["tgt_valid"]],
            lambda m: ["evaluate", "chat", "--model", m, "--file", w.data["chat_valid"]],
            lambda m: ["info", m], lambda m: ["export", m, w.out("pexp")],
            lambda m: ["similar", "cat", "--model", m]]
    for name in ("pickle_weights", "pickle_pt", "pickle_pkl"):
        for use in uses:
            res: Result = run_cli(*use(w.ckpts[name]), stdin="hi\n")
            assert_user_error(res, "refusing")
            assert not marker.exists(), f"the pickle in {name} ran"
    assert not w.out("pexp").exists()
    # the payload is real: unpickling it (in a child process) creates the marker
    import subprocess
    import sys

    code = ("import torch,sys; torch.load(sys.argv[1], weights_only=False)")
    subprocess.run([sys.executable, "-c", code, str(w.ckpts["pickle_pt"] / "model.pt")],
                   check=True, capture_output=True)
    assert marker.exists()
    marker.unlink()


def test_stream_one_line_per_input_bounded(w: World) -> None:
    """2,000 mixed lines through translate, 500 turns through chat: one output line each,
    in order; peak RSS stays bounded (bench/faults.py: 20,000 and 2,000)."""
    lines = []
    for i in range(2000):
        lines.append(["the cat sat", "", "the dog " * 2000, "\x00\x01 😀", "a"][i % 5])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = run_cli("translate", *tr(w), "--batch-size", "16", stdin="\n".join(lines) + "\n")
    assert res.code == 0, res.err[-500:]
    out = res.out.split("\n")
    assert len(out) == len(lines) + 1 and out[-1] == ""
    assert all(out[i] == "" for i in range(1, 2000, 5))  # empty in, empty out, in place
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grew < 500, f"peak RSS grew {grew:.0f} MB"
    turns = [["hello there", "my colour is red", "\x07 😀", "ok " * 3000][i % 4]
             for i in range(500)]
    res = run_cli("chat", *ch(w), stdin="\n".join(turns) + "\n")
    assert res.code == 0, res.err[-500:]
    assert len(res.out.splitlines()) == len(turns)


def test_tampered_corpus_files_are_refused(corpora_dir: Path, tmp_path: Path,
                                           seqtool_home: Path) -> None:
    """A corpus folder with one byte changed fails its checksum: one error line, and the
    store keeps what it had (nothing, then the good copy)."""
    good = corpora_dir / "addition"
    bad = tmp_path / "addition"
    shutil.copytree(good, bad)
    data = bad / "addition.txt"
    data.chmod(0o644)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 1
    data.write_bytes(bytes(raw))
    store = seqtool_home / "corpora" / "addition"
    assert_user_error(run_cli("corpus", "import", "addition", "--from", bad),
                      "checksum mismatch")
    assert not store.exists()
    assert run_cli("corpus", "import", "addition", "--from", good).code == 0
    assert_user_error(run_cli("corpus", "import", "addition", "--from", bad),
                      "checksum mismatch")
    assert (store / "addition.txt").read_bytes() == (good / "addition.txt").read_bytes()
    assert [p.name for p in store.parent.iterdir()] == ["addition"]
