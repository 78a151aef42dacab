"""End to end through the command line: train -> predict / generate / evaluate / info /
export, and every kind of bad input giving one `error:` line, a `hint:` and exit code 2."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import assert_user_error, run_cli, run_subprocess

from seqtool import __version__

PATTERN = "the cat sat on the mat . a dog ran to the red ball and the cat saw it .".split()


SENTENCES = ["the cat sat on the mat", "a dog ran to the red ball", "the sun is hot",
             "we like green tea", "my old car is slow"]


def write_corpus(folder: Path) -> tuple[Path, Path]:
    lines = [SENTENCES[i % len(SENTENCES)] for i in range(60)]
    folder.mkdir(parents=True, exist_ok=True)
    train, valid = folder / "train.txt", folder / "valid.txt"
    train.write_text("\n".join(lines) + "\n")
    valid.write_text("\n".join(lines[3:23]) + "\n")
    return train, valid


TINY = ["--config", "lm-tiny", "--set", "model.emb_dim=16", "--set", "model.hidden=16",
        "--set", "train.epochs=4", "--set", "train.batch_size=4", "--set", "train.bptt=8",
        "--set", "train.lr=0.02"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return write_corpus(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, data) -> Path:
    """One tiny LSTM LM trained through the real entry point (python -m seqtool)."""
    out = tmp_path_factory.mktemp("runs") / "lstm"
    home = tmp_path_factory.mktemp("home")
    res = run_subprocess("train", "lm", "--train-file", data[0], "--valid-file", data[1],
                         *TINY, "--out", out, "--json", home=home)
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["steps"] > 0 and summary["stop_reason"] == "finished"
    assert (out / "best" / "model.safetensors").is_file()
    assert (out / "last" / "trainer_state.json").is_file()
    return out


# --------------------------------------------------------------------------- happy paths


def test_predict_table(run):
    res = run_cli("predict", "the cat", "--model", run)
    assert res.code == 0, res.err
    assert "Prediction:" in res.out and "the cat" in res.out
    assert "warning" not in res.err


def test_predict_json(run):
    res = run_cli("predict", "the red", "--model", run, "--top-k", "5", "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert set(result) >= {"prompt", "candidates", "prediction", "unknown"}
    assert result["prompt"] == "the red" and result["unknown"] == []
    probs = [c["probability"] for c in result["candidates"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6
    tokens = [c["token"] for c in result["candidates"]]
    assert "<pad>" not in tokens and "<s>" not in tokens and "<unk>" not in tokens
    assert result["prediction"] in tokens
    assert result["prediction"] == "ball"  # the pattern has one continuation


def test_generate_seed_reproducible_and_greedy(run):
    def gen(*extra):
        res = run_cli("generate", "the cat", "--model", run, "--max-tokens", "12", "--json",
                      *extra)
        assert res.code == 0, res.err
        return json.loads(res.out)

    a = gen("--seed", "3", "--num", "3", "--temperature", "3.0")
    assert len(a["samples"]) == 3 and a["seed"] == 3
    assert gen("--seed", "3", "--num", "3", "--temperature", "3.0")["samples"] == a["samples"]
    b = gen("--seed", "4", "--num", "3", "--temperature", "3.0")
    assert b["samples"] != a["samples"]
    g = gen("--greedy", "--num", "3")
    assert g["greedy"] is True and len(g["samples"]) == 1
    assert gen("--greedy", "--seed", "9")["samples"] == g["samples"]
    assert g["samples"][0].startswith("sat on the ")  # it learned the text
    plain = run_cli("generate", "the cat", "--model", run, "--greedy", "--max-tokens", "5")
    assert plain.code == 0 and plain.out.startswith("the cat")


# prompts of 1, 2, 3 and 5 tokens, a repeat, and unknown words
PROMPTS = ["the cat", "a dog ran to the", "the", "the red", "we like green", "the cat",
           "zzyzx the", "my old car"]


def test_predict_stdin_is_one_at_a_time(run):
    """Prompts from stdin run in batches of equal length (--batch-size 2, chunks of 3
    lines): each output line is exactly what `seqtool predict PROMPT --json` prints."""
    alone = [run_cli("predict", p, "--model", run, "--top-k", "4", "--json").out.strip()
             for p in PROMPTS]
    for extra in ([], ["--batch-size", "2", "--read-ahead", "3"]):
        res = run_cli("predict", "--model", run, "--top-k", "4", "--json", *extra,
                      stdin="".join(p + "\n" for p in PROMPTS))
        assert res.code == 0, res.err
        assert res.out.splitlines() == alone
    assert "line 7: not in the vocabulary" in res.err and "zzyzx" in res.err
    plain = run_cli("predict", "--model", run, stdin="\n".join(PROMPTS))
    assert plain.code == 0, plain.err
    assert plain.out.splitlines() == [f"{p}\t{json.loads(a)['prediction']}"
                                      for p, a in zip(PROMPTS, alone, strict=True)]


def test_generate_stdin_samples_each_prompt_as_alone(run):
    """With --seed each prompt samples what it samples alone, in any batch."""
    args = ["--model", run, "--max-tokens", "8", "--temperature", "3.0", "--num", "2",
            "--seed", "5", "--json"]
    alone = [run_cli("generate", p, *args).out.strip() for p in PROMPTS]
    res = run_cli("generate", *args, "--batch-size", "3", stdin="\n".join(PROMPTS))
    assert res.code == 0, res.err
    assert res.out.splitlines() == alone
    samples = [json.loads(a)["samples"] for a in alone]
    assert samples[0] == samples[5]  # the same prompt, the same seed
    assert len({tuple(s) for s in samples}) > 2  # and the prompts do differ
    greedy = run_cli("generate", "--model", run, "--greedy", "--max-tokens", "4",
                     stdin="the cat\nthe red\n")
    assert greedy.code == 0, greedy.err
    one = run_cli("generate", "the red", "--model", run, "--greedy", "--max-tokens", "4")
    # one line per sample: the model's line breaks are written as <eos>
    assert greedy.out.splitlines()[1] == one.out.strip().replace("\n", " <eos> ")
    assert len(greedy.out.splitlines()) == 2


def test_prompts_stdin_empty_lines(run):
    """Plain output skips empty lines and counts them on stderr; --json answers each
    with an error object in its place."""
    stdin = "the cat\n\n   \nthe red\n"
    plain = run_cli("predict", "--model", run, stdin=stdin)
    assert plain.code == 0, plain.err
    assert [ln.split("\t")[0] for ln in plain.out.splitlines()] == ["the cat", "the red"]
    assert "skipped 2 lines with no prompt" in plain.err and "lines 2, 3" in plain.err
    for cmd in ("predict", "generate"):
        res = run_cli(cmd, "--model", run, "--json", stdin=stdin)
        assert res.code == 0, res.err
        objs = [json.loads(ln) for ln in res.out.splitlines()]
        assert len(objs) == 4 and objs[0]["prompt"] == "the cat" and objs[3]["prompt"] == "the red"
        assert objs[1] == {"line": 2, "prompt": "", "error": "the prompt is empty",
                           "hint": objs[1]["hint"]} and objs[1]["hint"]
        assert objs[2]["line"] == 3 and objs[2]["prompt"] == "   " and "error" in objs[2]
    res = run_cli("predict", "--model", run, "--json", stdin="")
    assert res.code == 0 and res.out == ""


def test_prompts_stdin_bad_bytes_and_terminal(run, monkeypatch):
    assert_user_error(run_cli("predict", "--model", run, stdin=b"the cat\n\xff\xfe\n"),
                      "line 2", "UTF-8", "seqtool predict")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    for cmd in ("predict", "generate"):
        assert_user_error(run_cli(cmd, "--model", run), f"nothing to {cmd}", "pipe prompts")


def test_evaluate_file_json(run, data):
    res = run_cli("evaluate", "lm", "--model", run, "--file", data[1], "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out)
    assert set(result) >= {"perplexity", "loss", "tokens", "corpus", "split"}
    assert result["split"] == "file" and result["corpus"] == str(data[1])
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    lines = data[1].read_text().splitlines()
    assert 0 < result["tokens"] <= sum(len(ln.split()) + 1 for ln in lines)
    assert 1 < result["perplexity"] < 4  # 22 words, but the text repeats: it learned it
    plain = run_cli("evaluate", "lm", "--model", run, "--file", data[1])
    assert plain.code == 0 and "perplexity" in plain.out


def test_info_parameter_counts_gru_vs_lstm(run, data, tmp_path):
    res = run_cli("train", "lm", "--train-file", data[0], "--valid-file", data[1], *TINY,
                  "--set", "model.cell=gru", "--set", "train.max_steps=2", "--out",
                  tmp_path / "gru", "--json")
    assert res.code == 0, res.err
    infos = {}
    for name, folder in (("lstm", run), ("gru", tmp_path / "gru")):
        r = run_cli("info", folder, "--json")
        assert r.code == 0, r.err
        infos[name] = json.loads(r.out)
    lstm, gru = infos["lstm"], infos["gru"]
    for info in (lstm, gru):
        assert info["kind"] == "lm" and info["weights_dtype"] == "F32"
        assert {"embed", "rnn", "out"} <= set(info["parameters"])
        assert info["total_parameters"] == sum(info["parameters"].values())
        assert info["parameters"]["embed"] == info["vocab_size"] * 16
    assert gru["parameters"]["rnn"] < lstm["parameters"]["rnn"]
    assert gru["parameters"]["rnn"] * 4 == lstm["parameters"]["rnn"] * 3  # 3 gates vs 4
    assert gru["model"]["cell"] == "gru"
    text = run_cli("info", run)
    assert text.code == 0 and "parameters" in text.out


def test_export_half(run, tmp_path):
    dest = tmp_path / "shipped"
    res = run_cli("export", run / "best", dest, "--half")
    assert res.code == 0, res.err
    assert "wrote" in res.out
    assert not (dest / "trainer_state.json").exists()
    info = json.loads(run_cli("info", dest, "--json").out)
    assert info["weights_dtype"] == "F16"
    full = (run / "best" / "model.safetensors").stat().st_size
    assert (dest / "model.safetensors").stat().st_size < 0.6 * full
    a = json.loads(run_cli("predict", "the red", "--model", run / "best", "--json").out)
    b = json.loads(run_cli("predict", "the red", "--model", dest, "--json").out)
    assert b["prediction"] == a["prediction"]
    assert b["candidates"][0]["probability"] == pytest.approx(
        a["candidates"][0]["probability"], abs=1e-2)


def test_resume_finished_run_with_more_epochs(run, tmp_path):
    """The --help example: `seqtool train lm --resume RUN --set train.epochs=N` goes on."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    done = json.loads((run / "last" / "trainer_state.json").read_text())
    assert done["done"] and done["epoch"] == 4
    res = run_cli("train", "lm", "--resume", copy, "--json")  # nothing left to do
    assert res.code == 0, res.err
    assert json.loads(res.out)["steps"] == done["global_step"]
    res = run_cli("train", "lm", "--resume", copy, "--set", "train.epochs=5", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["steps"] == done["global_step"] * 5 // 4
    assert json.loads((copy / "last" / "trainer_state.json").read_text())["epoch"] == 5
    card = (copy / "last" / "MODEL_CARD.md").read_text()
    recipe = card.split("## Recipe")[1].split("## Metrics")[0]
    assert "seqtool train lm --train-file" in recipe  # the command that started the run
    assert recipe.count("# resumed with: seqtool train lm --resume") == 2


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt(run, prompt):
    assert_user_error(run_cli("predict", prompt, "--model", run), "prompt")
    assert_user_error(run_cli("generate", prompt, "--model", run), "prompt")


def test_prompt_of_unknown_words_warns(run):
    res = run_cli("predict", "zzyzx qwerty", "--model", run)
    assert res.code == 0, res.err
    assert "warning" in res.err and "zzyzx" in res.err and "qwerty" in res.err
    assert "Prediction:" in res.out
    res = run_cli("predict", "the zzyzx", "--model", run, "--json")
    assert json.loads(res.out)["unknown"] == ["zzyzx"]


@pytest.mark.parametrize("content,words", [
    (None, ["not found"]),
    (b"", ["empty"]),
    (b"  \n\n \n", ["empty"]),
    (b"hello\x00world\n" * 5, ["binary"]),
    ("caf\xe9 au lait\n".encode("latin-1") * 3, ["UTF-8"]),
])
def test_bad_train_file(tmp_path, data, content, words):
    bad = tmp_path / "bad.txt"
    if content is not None:
        bad.write_bytes(content)
    res = run_cli("train", "lm", "--train-file", bad, "--valid-file", data[1], *TINY,
                  "--out", tmp_path / "run")
    assert_user_error(res, str(bad), *words)
    assert not (tmp_path / "run" / "last").exists()


def test_bad_valid_file(tmp_path, data):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe" + "x".encode("utf-16-le") * 10)
    res = run_cli("train", "lm", "--train-file", data[0], "--valid-file", bad, *TINY,
                  "--out", tmp_path / "run")
    assert_user_error(res, str(bad))


def test_missing_valid_file_flag(tmp_path, data):
    res = run_cli("train", "lm", "--train-file", data[0], *TINY, "--out", tmp_path / "run")
    assert_user_error(res, "valid")


def test_unknown_corpus(tmp_path):
    res = run_cli("train", "lm", "--corpus", "wikitext-3", "--config", "lm-tiny",
                  "--out", tmp_path / "run")
    assert_user_error(res, "wikitext-3", "wikitext-2", "ptb")
    assert_user_error(run_cli("evaluate", "lm", "--corpus", "nope", "--model", tmp_path),
                      "nope")


def test_corpus_not_imported(tmp_path):
    res = run_cli("train", "lm", "--corpus", "ptb", "--config", "lm-tiny",
                  "--out", tmp_path / "run")
    assert_user_error(res, "ptb", "import")


def test_missing_checkpoint(tmp_path):
    assert_user_error(run_cli("predict", "the cat", "--model", tmp_path / "nope"), "not found")
    assert_user_error(run_cli("info", tmp_path / "nope"), "not found")
    assert_user_error(run_cli("evaluate", "lm", "--model", tmp_path / "nope", "--file",
                              tmp_path / "nope.txt"))


def test_truncated_weights(run, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(run / "best", ck)
    w = ck / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    assert_user_error(run_cli("predict", "the cat", "--model", ck), "model.safetensors")
    assert_user_error(run_cli("info", ck))


def test_checkpoint_of_another_kind(run, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(run / "best", ck)
    meta = json.loads((ck / "config.json").read_text())
    meta["kind"] = "translate"
    (ck / "config.json").write_text(json.dumps(meta))
    assert_user_error(run_cli("predict", "the cat", "--model", ck), "translate")
    assert_user_error(run_cli("generate", "the cat", "--model", ck), "translate")


def test_unknown_config_key(tmp_path, data):
    res = run_cli("train", "lm", "--train-file", data[0], "--valid-file", data[1],
                  "--config", "lm-tiny", "--set", "train.lrr=0.1", "--out", tmp_path / "r")
    assert_user_error(res, "train.lrr", "did you mean", "'lr'")
    res = run_cli("train", "lm", "--train-file", data[0], "--valid-file", data[1],
                  "--config", "lm-tiny", "--set", "model.cell=foo", "--out", tmp_path / "r")
    assert_user_error(res, "model.cell", "peephole")
    res = run_cli("train", "lm", "--train-file", data[0], "--valid-file", data[1],
                  "--config", "lm-tinyy", "--out", tmp_path / "r")
    assert_user_error(res, "lm-tinyy", "lm-tiny")


@pytest.mark.parametrize("args,words", [
    (["predict", "the cat", "--top-k", "0"], ["--top-k"]),
    (["generate", "the cat", "--temperature", "0"], ["--temperature"]),
    (["generate", "the cat", "--temperature", "-1"], ["--temperature"]),
    (["generate", "the cat", "--top-p", "0"], ["--top-p"]),
    (["generate", "the cat", "--top-p", "1.5"], ["--top-p"]),
    (["generate", "the cat", "--top-k", "-2"], ["--top-k"]),
    (["generate", "the cat", "--max-tokens", "0"], ["--max-tokens"]),
    (["predict", "the cat", "--top-k", "many"], ["--top-k"]),
    (["predict", "the cat", "--bogus"], ["--bogus"]),
    (["frobnicate"], ["frobnicate"]),
    (["train", "lm", "--set", "train.lr"], ["table.key=value"]),
])
def test_bad_flags(run, args, words):
    if args[0] in ("predict", "generate") and "--model" not in args:
        args = [*args, "--model", str(run)]
    assert_user_error(run_cli(*args), *words)


def test_resume_with_other_architecture(run):
    before = (run / "last" / "model.safetensors").read_bytes()
    res = run_cli("train", "lm", "--resume", run, "--set", "model.hidden=64")
    assert_user_error(res, "hidden")
    res = run_cli("train", "lm", "--resume", run, "--config", "lm-tiny")
    assert_user_error(res, "--resume")
    assert (run / "last" / "model.safetensors").read_bytes() == before


def test_resume_of_nothing(tmp_path):
    assert_user_error(run_cli("train", "lm", "--resume", tmp_path), "resum")


def test_evaluate_needs_one_source(run, data):
    assert_user_error(run_cli("evaluate", "lm", "--model", run), "--file")
    assert_user_error(run_cli("evaluate", "lm", "--model", run, "--file", data[1],
                              "--corpus", "ptb"), "--file")


# --------------------------------------------------------------------------- help / version

COMMANDS = [[], ["train"], ["train", "lm"], ["predict"], ["generate"], ["evaluate"],
            ["evaluate", "lm"], ["info"], ["export"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "seqtool")
def test_help_has_examples(cmd):
    res = run_cli(*cmd, "--help")
    assert res.code == 0, res.err
    assert "Example" in res.out and "Usage:" in res.out


def _all_commands(group=None, path=()):
    import click

    from seqtool.cli import cli

    group = group or cli
    for name, cmd in group.commands.items():
        yield [*path, name]
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*path, name))


def test_every_command_has_help_with_examples():
    """Commands added later (corpus, tokenizer, ...) get the same check."""
    cmds = list(_all_commands())
    assert {tuple(c) for c in COMMANDS if c} <= {tuple(c) for c in cmds}
    for cmd in cmds:
        res = run_cli(*cmd, "--help")
        assert res.code == 0, (cmd, res.err)
        assert "Example" in res.out, f"seqtool {' '.join(cmd)} --help has no Example"


def test_subprocess_help_version_and_error(tmp_path):
    res = run_subprocess("--help", home=tmp_path)
    assert res.code == 0 and "Example" in res.out
    res = run_subprocess("--version", home=tmp_path)
    assert res.code == 0 and __version__ in res.out
    res = run_subprocess("predict", "the cat", "--model", tmp_path / "nope", home=tmp_path)
    assert_user_error(res, "not found")


def test_debug_shows_traceback(tmp_path):
    env = {**os.environ, "SEQTOOL_HOME": str(tmp_path), "SEQTOOL_DEBUG": "1"}
    p = subprocess.run([sys.executable, "-m", "seqtool", "info", str(tmp_path / "nope")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" in p.stderr and "error:" in p.stderr


# --------------------------------------------------------------------------- --hf-dataset
def test_hf_dataset_trains_and_evaluates_from_a_datasets_folder(tmp_path, monkeypatch,
                                                                 seqtool_home):
    """--hf-dataset goes through datasets.load_dataset; a local folder with train /
    validation / test files is a dataset to it, so the path is tested offline."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = tmp_path / "tiny_ds"
    ds.mkdir()
    for split, n in (("train", 60), ("validation", 20), ("test", 10)):
        (ds / f"{split}.txt").write_text(
            "".join(SENTENCES[i % len(SENTENCES)] + "\n" for i in range(n)))
    out = tmp_path / "run"
    res = run_cli("train", "lm", "--hf-dataset", ds, *TINY, "--set", "train.epochs=1",
                  "--out", out, "--json")
    assert res.code == 0, res.err
    written = list((seqtool_home / "hub").rglob("*.txt"))
    assert sorted(p.name for p in written) == ["train.txt", "valid.txt"]
    assert (out / "best" / "config.json").is_file()
    cfg = json.loads((out / "best" / "config.json").read_text())
    assert cfg["data"]["hf_dataset"] == str(ds) and cfg["data"]["corpus"] == ""
    ev = run_cli("evaluate", "lm", "--model", out, "--hf-dataset", ds, "--split", "test",
                 "--json")
    assert ev.code == 0, ev.err
    result = json.loads(ev.out)
    same = json.loads(run_cli("evaluate", "lm", "--model", out, "--file", ds / "test.txt",
                              "--json").out)  # the same text as a plain file
    assert result["tokens"] == same["tokens"] > 0
    assert result["perplexity"] == pytest.approx(same["perplexity"])
    assert result["corpus"] == str(ds) and result["split"] == "test"


def test_hf_dataset_unknown_or_offline_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert_user_error(run_cli("train", "lm", "--hf-dataset", "no-such-owner/no-such-set",
                              *TINY, "--out", tmp_path / "r"), "no-such-owner/no-such-set",
                      "offline")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    assert_user_error(run_cli("evaluate", "lm", "--model", tmp_path, "--hf-dataset",
                              "owner/set:cfg", "--split", "test"), "not reachable", "offline")
    assert_user_error(run_cli("train", "lm", "--hf-dataset", "x", "--corpus", "ptb", *TINY,
                              "--out", tmp_path / "r"), "--hf-dataset", "not both")


def test_predict_marks_a_prompt_over_the_limit_and_only_that(run) -> None:
    """A prompt over MAX_PROMPT_CHARS is read from its end and says so ("cut" in
    --json, a warning); a normal prompt's result has no "cut" key."""
    from seqtool.commands.predict import MAX_PROMPT_CHARS, predict_batch, predict_next
    from seqtool.loading import load_lm

    loaded = load_lm(run / "best")
    long_text = "the cat sat " * (MAX_PROMPT_CHARS // 8)
    res = predict_batch(loaded, ["the cat", long_text])
    assert "cut" not in res[0] and res[1]["cut"] is True
    # the end is what the model reads: the cut prompt predicts as its last 20,000 characters
    tail = predict_next(loaded, text=long_text[-MAX_PROMPT_CHARS:])
    assert tail["candidates"] == res[1]["candidates"]
