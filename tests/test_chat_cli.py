"""Dialogue end to end on tiny generated dialogues: train chat (HRED, VHRED) ->
chat in line mode (plain, --samples, --json, slash commands) -> the interactive
loop -> evaluate chat; and every kind of bad input: an empty line, a very long
line, only unknown words, non-UTF-8 bytes, a translation or LM checkpoint, EOF
in the middle of a session, bad flags."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cli_runner import Result, assert_user_error, run_cli

from seqtool.checkpoint import save_checkpoint
from seqtool.config import RunConfig
from seqtool.data.tokenizer import WordTokenizer
from seqtool.models import build_model

KEYS = ("red", "blue", "green", "gold")
FILLERS = ("ok", "sure", "go on", "i see")


def dialogue_file(path: Path, n: int, seed: int) -> Path:
    """Four-turn dialogues in DailyDialog's format; the last reply repeats the colour
    named two turns before it."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        k = rng.choice(KEYS)
        turns = ["hello there", f"my colour is {k}", rng.choice(FILLERS), f"you said {k}"]
        lines.append(" __eou__ ".join(turns) + " __eou__")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dialogues")
    return {"train": dialogue_file(d / "train.txt", 200, 1),
            "valid": dialogue_file(d / "valid.txt", 20, 2),
            "test": dialogue_file(d / "test.txt", 20, 3)}


def train(files: dict[str, Path], out: Path, *extra: str) -> dict:
    res = run_cli("train", "chat", "--train-file", files["train"], "--valid-file",
                  files["valid"], "--config", "chat-tiny", "--device", "cpu", "--out", out,
                  "--json", *extra)
    assert res.code == 0, res.err
    return json.loads(res.out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, files) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for arch in ("hred", "vhred"):
        summary = train(files, root / arch, "--model", arch)
        assert summary["arch"] == arch and summary["stop_reason"] == "finished"
        assert summary["train_replies"] == 600 and summary["valid_replies"] == 60
        out[arch] = root / arch
    return out


def chat(run: Path, *args: str, stdin: str | bytes = "") -> Result:
    return run_cli("chat", "--model", run, "--device", "cpu", "--seed", "1", *args,
                   stdin=stdin)


# --------------------------------------------------------------------------- training
def test_training_writes_checkpoints_and_vhred_logs_kl(runs):
    meta = json.loads((runs["vhred"] / "best" / "config.json").read_text())
    assert meta["kind"] == "chat" and meta["model"]["arch"] == "vhred"
    assert meta["data_stats"]["context_turns"] == 2
    records = [json.loads(ln) for ln in
               (runs["vhred"] / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["valid_kl"] > 0 for r in records)
    assert all("valid_kl_total" in r and r["valid_replies"] == 60 for r in records)
    hred = [json.loads(ln) for ln in (runs["hred"] / "metrics.jsonl").read_text().splitlines()]
    assert "valid_kl" not in hred[0]
    card = (runs["vhred"] / "best" / "MODEL_CARD.md").read_text()
    assert "VHRED" in card and "seqtool train chat" in card


def test_train_chat_bad_arch_is_a_flag_error(files, tmp_path):
    res = run_cli("train", "chat", "--model", "transformer", "--train-file", files["train"],
                  "--valid-file", files["valid"], "--out", tmp_path / "x")
    assert_user_error(res, "--model")


# --------------------------------------------------------------------------- line mode
def test_line_mode_one_reply_line_per_turn(runs):
    """The bot names a colour, the user says a filler, the bot repeats its own colour:
    the reply depends on the utterance two turns back (the bot's own)."""
    res = chat(runs["hred"], "--greedy", stdin="hello there\nsure\n")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("my colour is "), lines
    assert lines[1] == "you said " + lines[0].split()[-1]


def test_json_schema_and_samples(runs):
    res = chat(runs["vhred"], "--json", "--samples", "3",
               stdin="hello there\nmy colour is blue\n")
    assert res.code == 0, res.err
    objs = [json.loads(ln) for ln in res.out.splitlines()]
    assert [o["turn"] for o in objs] == [1, 2]
    assert all(set(o) == {"turn", "input", "replies"} for o in objs)
    assert objs[1]["input"] == "my colour is blue"
    assert all(len(o["replies"]) == 3 and all(isinstance(r, str) for r in o["replies"])
               for o in objs)
    plain = chat(runs["vhred"], "--samples", "2", stdin="hello there\n")
    assert len(plain.out.splitlines()) == 2


def test_slash_commands_in_line_mode(runs):
    script = ("hello there\n/history\n/samples 2\nmy colour is red\n/context 1\n/reset\n"
              "/samples zero\n/dance\n/help\n/quit\nnever read\n")
    res = chat(runs["hred"], "--json", stdin=script)
    assert res.code == 0, res.err
    objs = [json.loads(ln) for ln in res.out.splitlines()]
    assert [len(o["replies"]) for o in objs] == [1, 2]  # /quit stopped before the last line
    for words in ("you: hello there", "samples = 2", "context = 1", "forgotten",
                  "usage: /samples N", "unknown command /dance", "/reset"):
        assert words in res.err, (words, res.err)


# --------------------------------------------------------------------------- bad input
def test_empty_line_is_skipped_and_nothing_is_sent(runs):
    res = chat(runs["hred"], "--json", stdin="hello there\n\n   \nmy colour is red\n")
    assert res.code == 0, res.err
    objs = [json.loads(ln) for ln in res.out.splitlines()]
    assert [o["turn"] for o in objs] == [1, 2]  # the empty lines are no turns
    assert "line 2 is empty" in res.err and "line 3 is empty" in res.err


def test_very_long_line_is_truncated_with_a_notice(runs):
    res = chat(runs["hred"], stdin="hello " * 3000 + "\n")
    assert res.code == 0, res.err
    assert len(res.out.splitlines()) == 1
    assert "very long" in res.err and "reads its last 12" in res.err


def test_only_unknown_words_gives_a_notice_and_a_reply(runs):
    res = chat(runs["hred"], stdin="qwerty zxcvb\n")
    assert res.code == 0, res.err
    assert len(res.out.splitlines()) == 1 and "none of these words" in res.err


def test_non_utf8_stdin_is_an_error_after_the_replies_so_far(runs):
    res = chat(runs["hred"], stdin=b"hello there\nmy colour is \xff\xfe red\nsure\n")
    assert_user_error(res, "line 2", "not UTF-8", "iconv")
    assert len(res.out.splitlines()) == 1  # the first turn was answered


@pytest.mark.parametrize("kind", ["lm", "translate"])
def test_another_kind_of_checkpoint_is_refused_by_name(tmp_path, kind):
    from seqtool.config import LMModelConfig, Seq2SeqModelConfig

    tok = WordTokenizer.train(["a b c"])
    mcfg = (LMModelConfig(emb_dim=4, hidden=4, layers=1) if kind == "lm"
            else Seq2SeqModelConfig(emb_dim=4, enc_hidden=4, dec_hidden=8))
    model = build_model(kind, mcfg, tok.vocab_size)
    save_checkpoint(tmp_path / "ck", model=model, config=RunConfig(task=kind, model=mcfg),
                    tokenizer=tok, tgt_tokenizer=tok if kind == "translate" else None,
                    card="")
    res = run_cli("chat", "--model", tmp_path / "ck", stdin="hi\n")
    name = "language model" if kind == "lm" else "translation model"
    assert_user_error(res, name, f"'{kind}'", "not a chat model", "train chat")


def test_eof_in_the_middle_of_a_session(runs):
    res = chat(runs["hred"], "--json", stdin="hello there\nmy colour is gold")  # no newline
    assert res.code == 0, res.err
    assert [json.loads(ln)["input"] for ln in res.out.splitlines()] == [
        "hello there", "my colour is gold"]


def test_no_model_and_nothing_shipped(monkeypatch):
    from seqtool import loading

    monkeypatch.setattr(loading, "DEFAULT_CHAT", "not-installed-chat-model")
    assert_user_error(run_cli("chat", stdin="hi\n"), "shipped", "--model")


@pytest.mark.parametrize("flags, where", [(("--samples", "0"), "--samples"),
                                          (("--samples", "11"), "--samples"),
                                          (("--top-p", "1.5"), "--top-p"),
                                          (("--temperature", "0"), "--temperature"),
                                          (("--context", "0"), "--context")])
def test_bad_flags(runs, flags, where):
    assert_user_error(chat(runs["hred"], *flags, stdin="hi\n"), where)


# --------------------------------------------------------------------------- interactive loop
class Reader:
    """Stands in for the terminal: gives `lines`, then raises `end`."""

    def __init__(self, lines: list[str], end: type[BaseException] = EOFError) -> None:
        self.lines, self.end, self.calls = list(lines), end, 0

    def __call__(self, turn: int) -> str:
        self.calls += 1
        if not self.lines:
            raise self.end
        return self.lines.pop(0)


def session(run: Path, **settings):
    from seqtool.commands.chat import ChatSession, ChatSettings
    from seqtool.loading import load_chatbot

    return ChatSession(load_chatbot(run), ChatSettings(context=2, **settings), seed=0)


@pytest.mark.parametrize("end", [EOFError, KeyboardInterrupt])
def test_interactive_loop_reprompts_on_empty_lines_and_leaves_cleanly(runs, end, capsys):
    from seqtool.cli.chat import run_session

    s = session(runs["hred"], greedy=True)
    reader = Reader(["hello there", "", "   ", "sure", "/history"], end)
    run_session(s, reader)  # returns: Ctrl-D / Ctrl-C leave without an exception
    assert s.turns == 2 and reader.calls == 6  # two empty lines re-prompted
    out = capsys.readouterr()
    assert "you: sure" in out.out and "bye" in out.err
    colour = s.history[1][1].split()[-1]
    assert s.history[-1] == ("bot", f"you said {colour}")


def test_interactive_quit_and_vhred_samples(runs, capsys):
    from seqtool.cli.chat import run_session

    s = session(runs["vhred"], samples=3)
    run_session(s, Reader(["my colour is red", "/quit", "never read"]))
    assert s.turns == 1
    out = capsys.readouterr().out
    assert "bot 1>" in out and "bot 3>" in out


def test_vhred_greedy_samples_differ_by_z_alone(runs):
    """Greedy words, so any difference between the replies comes from z."""
    s = session(runs["vhred"], samples=8, greedy=True)
    turn = s.reply("my colour is red")  # the next turn is any of four fillers
    assert len(turn.replies) == 8 and len(set(turn.replies)) >= 2, turn.replies
    hred = session(runs["hred"], samples=8, greedy=True).reply("my colour is red")
    assert len(set(hred.replies)) == 1


# --------------------------------------------------------------------------- evaluate
def test_evaluate_chat(runs, files):
    res = run_cli("evaluate", "chat", "--model", runs["hred"], "--model", runs["vhred"],
                  "--file", files["test"], "--json")
    assert res.code == 0, res.err
    hred, vhred = (json.loads(ln) for ln in res.out.splitlines())
    for r in (hred, vhred):
        assert r["replies"] == 60 and r["split"] == "file"
        assert 1 < r["perplexity"] < 1000 and 0 <= r["bleu1"] <= 100 and 0 <= r["bleu2"] <= 100
        assert 0 < r["distinct1"] <= 1 and 0 < r["distinct2"] <= 1 and r["avg_len"] > 0
        assert r["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert hred["perplexity_is_bound"] is False and hred["kl_per_reply"] is None
    assert vhred["perplexity_is_bound"] is True and vhred["kl_per_reply"] > 0
    table = run_cli("evaluate", "chat", "--model", runs["hred"], "--model", runs["vhred"],
                    "--file", files["test"], "--limit", "10")
    assert table.code == 0, table.err
    assert "upper bound" in table.out and "BLEU-2" in table.out and "signature" in table.out
    assert "vhred" in table.out and "dist-2" in table.out


def test_evaluate_chat_needs_data(runs, files):
    res = run_cli("evaluate", "chat", "--model", runs["hred"], "--file", files["test"],
                  "--corpus", "dailydialog")
    assert_user_error(res, "either --corpus or --file")
