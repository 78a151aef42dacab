"""The Python API (seqtool.load, seqtool.train; seqtool/api.py) on tiny models it
trains itself: the same results as the command line's --json, the wrong method for
a checkpoint's kind refused by name, arguments checked as the flags are, chat
sessions that never share history or random numbers, and `import seqtool`
staying light."""

from __future__ import annotations

import inspect
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_runner import run_cli
from serve_models import train_date_translator, write_lines

import seqtool
from seqtool.config import ChatSettings, PredictConfig, SamplingConfig
from seqtool.data.toy import chars, date_pairs
from seqtool.errors import CheckpointError, ConfigError, InputError, SeqtoolError

SENTENCES = ["the cat sat on the mat", "a dog ran to the red ball", "the sun is hot",
             "we like green tea", "my old car is slow"]
TINY_LM = {"model": {"emb_dim": 16, "hidden": 16},
           "train": {"epochs": 4, "batch_size": 4, "bptt": 8, "lr": 0.02}}


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("lm")
    lines = [SENTENCES[i % len(SENTENCES)] for i in range(60)]
    data = {"train_file": write_lines(d / "train.txt", lines),
            "valid_file": write_lines(d / "valid.txt", lines[3:23])}
    summary = seqtool.train("lm-tiny", out=d / "run", data=data, device="cpu", **TINY_LM)
    return d / "run", summary


@pytest.fixture(scope="module")
def lm(lm_run) -> seqtool.Model:
    return seqtool.load(lm_run[0], device="cpu")


# --------------------------------------------------------------------------- import
def test_import_seqtool_is_light_and_its_names_are_lazy():
    code = ("import sys, seqtool; heavy = lambda: 'torch' in sys.modules; a = heavy(); "
            "names = [n for n in ('load', 'train', 'Model', 'Chat') if n in dir(seqtool)]; "
            "f = seqtool.load; b = heavy(); "
            "print(a, names, 'seqtool.api' in sys.modules, b, hasattr(seqtool, 'nope'))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "['load',", "'train',", "'Model',", "'Chat']", "True",
                                "False", "False"]
    assert seqtool.load is seqtool.api.load and seqtool.Model is seqtool.api.Model


def test_api_defaults_are_the_config_defaults():
    """The keyword defaults in the signatures are the config keys' own."""
    def defaults(f):
        return {k: p.default for k, p in inspect.signature(f).parameters.items()
                if p.default is not inspect.Parameter.empty}

    gen = defaults(seqtool.Model.generate)
    s = SamplingConfig()
    assert (gen["max_tokens"], gen["temperature"], gen["top_k"], gen["top_p"], gen["greedy"],
            gen["num"]) == (s.max_tokens, s.temperature, s.top_k, s.top_p, s.greedy,
                            s.num_samples)
    assert defaults(seqtool.Model.predict)["k"] == PredictConfig().top_k
    assert defaults(seqtool.Model.predict_many)["k"] == PredictConfig().top_k
    chat, c = defaults(seqtool.Model.chat), ChatSettings()
    assert (chat["samples"], chat["temperature"], chat["top_p"], chat["greedy"]) == (
        c.samples, c.temperature, c.top_p, c.greedy)


# --------------------------------------------------------------------------- language model
def test_train_returns_the_summary_and_records_the_call(lm_run):
    run, summary = lm_run
    assert summary["stop_reason"] == "finished" and summary["steps"] > 0
    assert Path(summary["run_dir"]) == run
    card = (run / "best" / "MODEL_CARD.md").read_text("utf-8")
    assert "seqtool.train('lm-tiny', out=" in card and "'epochs': 4" in card


def test_predict_and_generate_equal_the_cli_json(lm, lm_run):
    run = lm_run[0]
    assert lm.kind == "lm" and lm.path == run / "best"
    cli = json.loads(run_cli("predict", "the red", "--model", run, "--top-k", "5",
                             "--json").out)
    assert lm.predict("the red", k=5) == cli
    assert cli["prediction"] == "ball"
    args = ["--max-tokens", "8", "--temperature", "2.0", "--num", "2", "--seed", "7"]
    cli = json.loads(run_cli("generate", "the cat", "--model", run, *args, "--json").out)
    assert lm.generate("the cat", max_tokens=8, temperature=2.0, num=2, seed=7) == cli
    info = lm.info
    assert info["kind"] == "lm" and info["total_parameters"] > 0


def test_many_prompts_equal_one_at_a_time(lm):
    prompts = ["the cat", "a dog ran to the", "the", "the red", "the cat", "my old car is"]
    assert lm.predict_many(prompts, k=3, batch_size=2) == [lm.predict(p, k=3) for p in prompts]
    many = lm.generate_many(prompts, max_tokens=6, temperature=3.0, seed=2, batch_size=4)
    assert many == [lm.generate(p, max_tokens=6, temperature=3.0, seed=2) for p in prompts]
    assert many[0]["samples"] == many[4]["samples"]


def test_resume_from_python(lm_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(lm_run[0], run)
    summary = seqtool.train(resume=run, train={"epochs": 5}, device="cpu")
    assert summary["steps"] > lm_run[1]["steps"]
    with pytest.raises(ConfigError, match="resume"):
        seqtool.train("lm-tiny", resume=run)


def test_wrong_method_for_the_kind_is_refused_by_name(lm):
    with pytest.raises(CheckpointError, match=r"language model; \.translate\(\) needs a "
                                              "translation model") as exc:
        lm.translate("ein hund")
    assert ".predict()" in (exc.value.hint or "")
    with pytest.raises(CheckpointError, match=r"\.chat\(\) needs a chat model"):
        lm.chat()


def test_arguments_are_checked_as_the_flags_are(lm, lm_run, tmp_path):
    bad = [(lambda: lm.predict("the", k=0), ConfigError, "k = 0"),
           (lambda: lm.generate("the", temperature=0), ConfigError, "temperature"),
           (lambda: lm.generate("the", num=0), ConfigError, "num = 0"),
           (lambda: lm.predict_many("the cat"), InputError, "list of prompts"),
           (lambda: lm.predict_many(["the", " "]), InputError, "prompt 2 of 2"),
           (lambda: lm.predict(""), InputError, "empty"),
           (lambda: lm.predict_many(["the"], batch_size=0), ConfigError, "batch_size"),
           (lambda: seqtool.load("lmm"), CheckpointError, "'lm'"),
           (lambda: seqtool.load(tmp_path / "nope"), CheckpointError, "nope"),
           (lambda: seqtool.load(task="bogus"), ConfigError, "bogus"),
           (lambda: seqtool.load(), ConfigError, "task"),
           (lambda: seqtool.load(lm_run[0], task="chat"), CheckpointError, "not a chat"),
           (lambda: seqtool.load(lm_run[0], src="de"), ConfigError, "src"),
           (lambda: seqtool.load(lm_run[0], device="gpu"), ConfigError, "device"),
           (lambda: seqtool.train(), ConfigError, "preset"),
           (lambda: seqtool.train("lm-tinyy"), ConfigError, "lm-tiny"),
           (lambda: seqtool.train("lm-tiny", data="a.txt"), ConfigError, "data="),
           (lambda: seqtool.train("lm-tiny", train={"epochz": 1}), ConfigError, "epochs"),
           (lambda: seqtool.train("lm-tiny", task="chat"), ConfigError, "task")]
    for call, error, words in bad:
        with pytest.raises(error) as exc:
            call()
        assert isinstance(exc.value, SeqtoolError) and exc.value.hint, words
        assert words in exc.value.message + " " + exc.value.hint, (words, exc.value.message)


# --------------------------------------------------------------------------- translation
@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> seqtool.Model:
    d = tmp_path_factory.mktemp("dates")
    return seqtool.load(train_date_translator(d, d / "run"), task="translate", device="cpu")


def test_translate_equals_the_cli(translator):
    sources = [chars(s) for s, _ in date_pairs(6, seed=3)]
    one = translator.translate(sources[0], beam=3)
    cli = json.loads(run_cli("translate", sources[0], "--model", translator.path, "--beam",
                             "3", "--json").out)
    assert one.to_json() == cli and str(one) == one.text == cli["translations"][0]["text"]
    many = translator.translate(sources + [""], beam=3, batch_size=4)
    stream = run_cli("translate", "--model", translator.path, "--beam", "3",
                     stdin="\n".join(sources + [""]) + "\n")
    assert [t.text for t in many] == stream.out.splitlines()
    assert many[-1].text == "" and many[0].text == one.text
    nbest = translator.translate(sources[0], beam=3, nbest=2)
    assert len(nbest.texts) == 2 and nbest.scores[0] >= nbest.scores[1]
    with pytest.raises(ConfigError, match="nbest"):
        translator.translate(sources[0], beam=2, nbest=3)
    with pytest.raises(CheckpointError, match=r"\.predict\(\) needs a language model"):
        translator.predict("m a y")


# --------------------------------------------------------------------------- chat
KEYS = ("red", "blue", "green", "gold")


@pytest.fixture(scope="module")
def chatbot(tmp_path_factory) -> seqtool.Model:
    """A tiny VHRED: its z comes from torch's default generator, which each session
    must keep to itself."""
    d = tmp_path_factory.mktemp("dialogues")
    rng = random.Random(1)
    lines = []
    for _ in range(200):
        k = rng.choice(KEYS)
        turns = ["hello there", f"my colour is {k}", "ok", f"you said {k}"]
        lines.append(" __eou__ ".join(turns) + " __eou__")
    data = {"train_file": write_lines(d / "train.txt", lines),
            "valid_file": write_lines(d / "valid.txt", lines[:20])}
    seqtool.train("chat-tiny", out=d / "run", data=data, model={"arch": "vhred"}, device="cpu")
    return seqtool.load(d / "run", device="cpu")


def test_chat_sessions_never_share_history(chatbot):
    a, b = chatbot.chat(seed=1), chatbot.chat(seed=2)
    a.say("hello there")
    b.say("my colour is red")
    a.say("ok")
    assert [t for who, t in a.history if who == "you"] == ["hello there", "ok"]
    assert [t for who, t in b.history if who == "you"] == ["my colour is red"]
    a.reset()
    assert a.history == [] and len(b.history) == 2
    with pytest.raises(InputError, match="empty"):
        a.say("  ")


def test_chat_sessions_never_share_random_numbers(chatbot):
    """A session's replies with a seed are the same alone, interleaved with another
    session, or after the caller used torch's generator; the caller's numbers do
    not change either."""
    lines = ["hello there", "my colour is blue", "ok", "hello there"]
    settings = {"samples": 3, "temperature": 2.0, "top_p": 1.0}

    alone = chatbot.chat(seed=1, **settings)
    expected = [alone.say(x) for x in lines]
    assert len({tuple(r) for r in expected}) > 1

    a, b = chatbot.chat(seed=1, **settings), chatbot.chat(seed=2, **settings)
    got = []
    for x in lines:
        torch.rand(3)
        got.append(a.say(x))
        b.say(x)
    assert got == expected
    torch.manual_seed(0)
    want = torch.rand(4)
    torch.manual_seed(0)
    chatbot.chat(seed=5).say("hello there")
    assert torch.equal(torch.rand(4), want)


# --------------------------------------------------------------------------- word2vec
def test_word2vec_trains_but_is_not_loaded(tmp_path):
    text = write_lines(tmp_path / "text.txt", SENTENCES * 20)
    summary = seqtool.train(task="word2vec", out=tmp_path / "w2v", data={"train_file": text},
                            tokenizer={"min_freq": 1}, model={"dim": 8},
                            train={"epochs": 1}, threads=1)
    assert summary["vocab_size"] > 10
    with pytest.raises(CheckpointError, match="word2vec model"):
        seqtool.load(tmp_path / "w2v")
