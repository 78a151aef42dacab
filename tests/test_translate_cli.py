"""Translation end to end on a tiny generated date corpus (seqtool.data.toy):
train translate -> translate a sentence -> stdin streaming -> --json -> --reference
-> evaluate translate; the translate checkpoint round trip; resume == uninterrupted;
and every kind of bad input giving one `error:` line, a `hint:` and exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_runner import Result, assert_user_error, run_cli
from safetensors.torch import load_file

from seqtool.checkpoint import CONFIG_FILE, TGT_DIR, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from seqtool.config import RunConfig, Seq2SeqModelConfig
from seqtool.configfile import build_config
from seqtool.data.parallel import pad_batch
from seqtool.data.tokenizer import WordTokenizer
from seqtool.data.toy import chars, date_pairs
from seqtool.errors import CheckpointError
from seqtool.metrics import bleu
from seqtool.models import build_model


def write_side(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return path


EMPTY_PAIRS = [("", ""), ("", "1 9 9 9"), ("m a y", ""), ("   ", "x")]  # all skipped


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Character-level date pairs: train (with pairs that have an empty side), valid, test."""
    d = tmp_path_factory.mktemp("dates")
    train = [(chars(s), chars(t)) for s, t in date_pairs(320, seed=1)]
    train[10:10] = EMPTY_PAIRS
    valid = [(chars(s), chars(t)) for s, t in date_pairs(24, seed=2)]
    test = [(chars(s), chars(t)) for s, t in date_pairs(40, seed=3)]
    files = {}
    for name, pairs in (("train", train), ("valid", valid), ("test", test)):
        files[f"{name}_src"] = write_side(d / f"{name}.src", [s for s, _ in pairs])
        files[f"{name}_tgt"] = write_side(d / f"{name}.tgt", [t for _, t in pairs])
    return files


def train_args(data: dict[str, Path]) -> list[str | Path]:
    return ["train", "translate", "--train-src", data["train_src"], "--train-tgt",
            data["train_tgt"], "--valid-src", data["valid_src"], "--valid-tgt",
            data["valid_tgt"], "--config", "translate-tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    res = run_cli(*train_args(data), "--out", out, "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["stop_reason"] == "finished" and summary["metric"] == "valid_bleu"
    assert summary["skipped_empty"] == {"train": len(EMPTY_PAIRS), "valid": 0}
    assert summary["train_pairs"] == 320 and summary["valid_pairs"] == 24
    return out


def source_lines(data: dict[str, Path]) -> list[str]:
    return data["test_src"].read_text("utf-8").splitlines()


def translate(run: Path, *args: str, stdin: str | None = None) -> Result:
    return run_cli("translate", *args, "--model", run, "--device", "cpu", stdin=stdin)


# --------------------------------------------------------------------------- happy paths


def test_training_keeps_best_by_bleu_and_both_tokenizers(run):
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3  # one per epoch (translate-tiny: 3 epochs)
    for r in records:
        assert {"valid_loss", "valid_ppl", "valid_bleu"} <= set(r) and 0 <= r["valid_bleu"] <= 100
    best = max(r["valid_bleu"] for r in records)
    meta = json.loads((run / "best" / CONFIG_FILE).read_text())
    assert meta["metrics"]["valid_bleu"] == best
    assert meta["kind"] == "translate" and meta["task"] == "translate"
    assert meta["vocab_size"] == [len(json.loads((run / "best" / f).read_text())["tokens"])
                                  for f in ("tokenizer.json", f"{TGT_DIR}/tokenizer.json")]
    assert meta["data_stats"]["max_src_len"] > 0 and meta["search"]["beam_size"] == 3
    card = (run / "best" / "MODEL_CARD.md").read_text()
    assert "attention bahdanau" in card and "bi-GRU" in card


def test_translate_one_sentence(run, data):
    src = source_lines(data)[0]
    res = translate(run, src)
    assert res.code == 0, res.err
    assert len(res.out.splitlines()) == 1 and res.out.strip()
    js = translate(run, src, "--json", "--beam", "4", "--nbest", "3")
    assert js.code == 0, js.err
    obj = json.loads(js.out)
    assert set(obj) == {"source", "translations"} and obj["source"] == src
    assert len(obj["translations"]) == 3
    assert all(set(t) == {"text", "score"} for t in obj["translations"])
    scores = [t["score"] for t in obj["translations"]]
    assert scores == sorted(scores, reverse=True)
    nbest = translate(run, src, "--beam", "4", "--nbest", "3")
    assert nbest.code == 0 and len(nbest.out.splitlines()) >= 3  # a table of three


def test_stdin_streaming_gives_one_line_per_input_line_in_order(run, data):
    lines = source_lines(data)
    lines[5] = ""  # an empty line stays an (empty) output line
    text = "\n".join(lines) + "\n"
    batched = translate(run, "--beam", "1", "--batch-size", "7", stdin=text)
    assert batched.code == 0, batched.err
    out = batched.out.split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    assert out[5] == "" and all(out[i] for i in range(len(lines)) if i != 5)
    single = translate(run, "--beam", "1", "--batch-size", "1", stdin=text)
    assert single.out == batched.out  # batching (sorted by length) keeps the order
    for ahead in ("1", "11"):  # blocks of lines read ahead, sorted, batched, in order
        blocks = translate(run, "--beam", "1", "--batch-size", "3", "--read-ahead", ahead,
                           stdin=text)
        assert blocks.code == 0 and blocks.out == batched.out, blocks.err
    no_newline = translate(run, "--beam", "1", stdin=text.rstrip("\n"))
    assert no_newline.out == batched.out
    assert batched.err == ""  # no progress bar when stderr is not a terminal


def test_stdin_answers_each_line_as_it_comes_with_read_ahead_1(run, data):
    """--batch-size 1 --read-ahead 1: a program that writes a line and waits for its
    translation gets it before it sends the next line (or closes stdin)."""
    import os
    import select
    import subprocess
    import sys

    line = source_lines(data)[0]
    with subprocess.Popen(
            [sys.executable, "-m", "seqtool", "translate", "--model", str(run), "--device",
             "cpu", "--beam", "1", "--batch-size", "1", "--read-ahead", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
            ) as proc:  # buffered stdout, as for most users: seqtool must flush
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        first = proc.stdout.readline() if ready else None
        proc.stdin.close()
        rest = proc.stdout.read()
    assert first is not None, "no translation before stdin was closed"
    assert first == translate(run, "--beam", "1", stdin=line + "\n").out and rest == ""


def test_stdin_json_and_nbest_formats(run, data):
    lines = source_lines(data)[:9]
    res = translate(run, "--json", "--beam", "3", "--nbest", "2", "--batch-size", "4",
                    stdin="\n".join(lines) + "\n")
    assert res.code == 0, res.err
    objs = [json.loads(ln) for ln in res.out.splitlines()]
    assert [o["source"] for o in objs] == lines
    for o in objs:
        assert set(o) == {"source", "translations"} and len(o["translations"]) == 2
        assert all(isinstance(t["text"], str) and isinstance(t["score"], float)
                   for t in o["translations"])
    moses = translate(run, "--beam", "3", "--nbest", "2", stdin="\n".join(lines) + "\n")
    rows = [ln.split(" ||| ") for ln in moses.out.splitlines()]
    assert [int(r[0]) for r in rows] == [i for i in range(9) for _ in range(2)]
    assert [r[1] for r in rows] == [t["text"] for o in objs for t in o["translations"]]


def test_reference_prints_bleu_chrf_and_signature(run, data):
    text = data["test_src"].read_text("utf-8")
    res = translate(run, "--beam", "2", "--reference", data["test_tgt"], stdin=text)
    assert res.code == 0, res.err
    hyps = res.out.splitlines()
    assert len(hyps) == 40
    expected = bleu(hyps, data["test_tgt"].read_text("utf-8").splitlines())
    assert f"BLEU {expected['score']:.2f}" in res.err and "chrF" in res.err
    assert expected["signature"] in res.err and "nc:6" in res.err


def test_evaluate_translate_json(run, data):
    res = run_cli("evaluate", "translate", "--model", run, "--src-file", data["test_src"],
                  "--ref-file", data["test_tgt"], "--beam", "2", "--json", "--device", "cpu")
    assert res.code == 0, res.err
    r = json.loads(res.out)
    assert {"bleu", "chrf", "bleu_signature", "chrf_signature", "sentences",
            "sentences_per_s", "beam", "seconds", "model"} <= set(r)
    assert r["sentences"] == 40 and r["beam"] == 2 and r["sentences_per_s"] > 0
    assert r["bleu_signature"].startswith("nrefs:1|") and 0 <= r["bleu"] <= 100
    ref = translate(run, "--beam", "2", "--reference", data["test_tgt"],
                    stdin=data["test_src"].read_text("utf-8"))
    assert f"BLEU {r['bleu']:.2f}" in ref.err  # the same score both ways
    plain = run_cli("evaluate", "translate", "--model", run, "--src-file", data["test_src"],
                    "--ref-file", data["test_tgt"], "--device", "cpu")
    assert plain.code == 0 and "BLEU" in plain.out and "signature" in plain.out


def test_show_attention(run, data):
    src = source_lines(data)[1]
    res = translate(run, src, "--show-attention", "--json")
    assert res.code == 0, res.err
    att = json.loads(res.out)["attention"]
    assert att["source_tokens"] == src.split()
    assert len(att["weights"]) == len(att["target_tokens"]) >= 1
    for row in att["weights"]:
        assert len(row) == len(src.split()) and sum(row) == pytest.approx(1.0, abs=1e-3)
    plain = translate(run, src, "--show-attention")
    assert plain.code == 0 and "attention" in plain.out
    assert all(tok in plain.out for tok in att["target_tokens"][:-1])


def test_attention_png(run, data, tmp_path):
    pytest.importorskip("matplotlib")
    src = source_lines(data)[1]
    png = tmp_path / "att.png"
    res = translate(run, src, "--attention-png", png)
    assert res.code == 0, res.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert "attention (rows" not in res.out  # the PNG alone, no heat map in the terminal
    assert_user_error(translate(run, src, "--attention-png", tmp_path / "no" / "a.png"),
                      "does not exist")
    assert_user_error(translate(run, "--attention-png", png, stdin="a\n"), "--attention-png")


def test_shipped_model_is_picked_by_language_pair(run, data, tmp_path, monkeypatch):
    import seqtool.loading as tr

    shutil.copytree(run / "best", tmp_path / "translate-xx-yy")
    monkeypatch.setattr(tr, "checkpoints_root", lambda: tmp_path)
    res = run_cli("translate", source_lines(data)[0], "--src", "xx", "--tgt", "yy",
                  "--device", "cpu")
    assert res.code == 0, res.err
    assert res.out == translate(run, source_lines(data)[0]).out
    assert_user_error(run_cli("translate", "hallo", "--src", "de", "--tgt", "fr"),
                      "de -> fr", "translate-xx-yy")


# --------------------------------------------------------------------------- checkpoints


def tiny_parts(shared: bool):
    torch.manual_seed(0)
    src = WordTokenizer.train(["a b c d e f g", "h i j"])
    tgt = src if shared else WordTokenizer.train(["u v w x", "y z"])
    mcfg = Seq2SeqModelConfig(emb_dim=8, enc_hidden=8, dec_hidden=16, dropout=0.1,
                              shared_vocab=shared)
    cfg = RunConfig(task="translate", model=mcfg)
    model = build_model("translate", mcfg, (src.vocab_size, tgt.vocab_size))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval(), cfg, src, tgt


def step_logits(model, src, tgt) -> torch.Tensor:
    batch = pad_batch([(src.encode("a b c"), tgt.encode(tgt.tokens[5])),
                       (src.encode("h i j d"), tgt.encode(tgt.tokens[4]))])
    with torch.no_grad():
        state, first = model.start(batch)
        lp, _ = model.step(first, state)
        return torch.cat([lp.flatten(), model.loss(batch).loss_sum[None]])


@pytest.mark.parametrize("shared", [False, True])
def test_checkpoint_round_trip_identical_logits(tmp_path, shared):
    model, cfg, src, tgt = tiny_parts(shared)
    save_checkpoint(tmp_path / "ck", model=model, config=cfg, tokenizer=src, tgt_tokenizer=tgt,
                    card="# card\n")
    assert (tmp_path / "ck" / TGT_DIR).is_dir() != shared
    loaded = load_checkpoint(tmp_path / "ck", expect_kind="translate")
    assert loaded.config == cfg
    assert loaded.tokenizer.tokens == src.tokens and loaded.tgt_tokenizer.tokens == tgt.tokens
    assert (loaded.tgt_tokenizer is loaded.tokenizer) == shared
    assert torch.equal(step_logits(loaded.model, src, tgt), step_logits(model, src, tgt))
    meta = json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())
    assert meta["vocab_size"] == [src.vocab_size, tgt.vocab_size]


def test_checkpoint_with_a_mismatched_target_tokenizer(tmp_path):
    model, cfg, src, tgt = tiny_parts(False)
    save_checkpoint(tmp_path / "ck", model=model, config=cfg, tokenizer=src, tgt_tokenizer=tgt,
                    card="")
    WordTokenizer.train(["p q r s t u v w"]).save(tmp_path / "ck" / TGT_DIR)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "ck")
    assert "vocabulary size" in exc.value.message and "[14, 12]" in exc.value.message
    assert "[14, 10]" in exc.value.message


def test_language_model_checkpoints_keep_loading(tmp_path):
    """An LM folder written before translation (no [search], no new [data] keys) loads,
    and its tgt_tokenizer is its tokenizer."""
    from seqtool.config import LMModelConfig

    tok = WordTokenizer.train(["the cat sat on the mat"])
    mcfg = LMModelConfig(emb_dim=8, hidden=8, layers=1)
    save_checkpoint(tmp_path / "lm", model=build_model("lm", mcfg, tok.vocab_size),
                    config=RunConfig(model=mcfg), tokenizer=tok, card="")
    meta = json.loads((tmp_path / "lm" / CONFIG_FILE).read_text())
    assert meta["vocab_size"] == tok.vocab_size and not (tmp_path / "lm" / TGT_DIR).exists()
    del meta["search"]
    for key in ("src_lang", "tgt_lang", "train_src", "train_tgt", "valid_src", "valid_tgt",
                "test_src", "test_tgt", "bleu_tokenize"):
        del meta["data"][key]
    (tmp_path / "lm" / CONFIG_FILE).write_text(json.dumps(meta))
    loaded = load_checkpoint(tmp_path / "lm", expect_kind="lm")
    assert loaded.tgt_tokenizer is loaded.tokenizer and loaded.config.model == mcfg


# --------------------------------------------------------------------------- resume


def resume_cfg(data: dict[str, Path], **train_kw):
    return build_config({
        "task": "translate",
        "data": {k: str(data[k]) for k in ("train_src", "train_tgt", "valid_src", "valid_tgt")},
        "model": {"emb_dim": 8, "enc_hidden": 8, "dec_hidden": 16, "dropout": 0.2},
        "train": {"epochs": 3, "batch_size": 64, "optimizer": "adam", "lr": 1e-2,
                  "schedule": "plateau", "patience": 0, "log_every": 1, **train_kw},
    })


@pytest.mark.parametrize("stop", [3, 5])
def test_resume_equals_uninterrupted(tmp_path, data, stop):
    """320 pairs / 64 = 5 steps per epoch: stop mid-epoch (3) or at its end (5)."""
    from seqtool.runs import resume_config
    from seqtool.commands.train_translate import train_translate

    one = train_translate(resume_cfg(data, max_steps=8), out=tmp_path / "one")
    assert one["steps"] == 8
    train_translate(resume_cfg(data, max_steps=stop), out=tmp_path / "two")
    two = train_translate(resume_config(tmp_path / "two", ("train.max_steps=8",)),
                          resume=tmp_path / "two")
    assert two["steps"] == 8
    a = load_file(str(tmp_path / "one" / "last" / WEIGHTS_FILE))
    b = load_file(str(tmp_path / "two" / "last" / WEIGHTS_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist = [json.loads((tmp_path / r / "last" / "trainer_state.json").read_text())["history"]
            for r in ("one", "two")]
    by_step = {h["step"]: h["valid_bleu"] for h in hist[1]}  # (+ the evaluation at the stop)
    assert [h["valid_bleu"] for h in hist[0]] == [by_step[h["step"]] for h in hist[0]]


def test_interrupt_hint_names_train_translate(tmp_path, data, monkeypatch):
    from seqtool.commands.train_translate import train_translate
    from seqtool.errors import Interrupted
    from seqtool.models.seq2seq import Seq2Seq

    def interrupt(self, batch, carry=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Seq2Seq, "forward", interrupt)
    with pytest.raises(Interrupted) as exc:
        train_translate(resume_cfg(data), out=tmp_path / "run")
    assert f"seqtool train translate --resume {tmp_path / 'run'}" in exc.value.hint


# --------------------------------------------------------------------------- bad input


def test_misaligned_parallel_files(tmp_path, data):
    short = write_side(tmp_path / "short.tgt", data["train_tgt"].read_text().splitlines()[:-7])
    args = train_args(data)
    args[args.index(data["train_tgt"])] = short
    res = run_cli(*args, "--out", tmp_path / "run")
    assert_user_error(res, str(data["train_src"]), str(short), "324 lines", "317")
    assert not (tmp_path / "run").exists()


def test_empty_lines_in_training_data_are_skipped_and_counted(tmp_path, data):
    res = run_cli(*train_args(data), "--set", "train.max_steps=1", "--out", tmp_path / "run")
    assert res.code == 0, res.err
    assert f"skipped {len(EMPTY_PAIRS)} training and 0 validation pairs" in res.out


def test_source_far_longer_than_training_is_translated_with_a_warning(run, data):
    long = " <sp> ".join(source_lines(data)[:6])
    res = translate(run, long)
    assert res.code == 0, res.err
    assert "warning" in res.err and "longer than any training sentence" in res.err
    assert res.out.strip()
    stream = translate(run, stdin=source_lines(data)[0] + "\n" + long + "\n")
    assert stream.code == 0 and len(stream.out.splitlines()) == 2
    assert "line 2:" in stream.err


def test_unsupported_language_pair_lists_shipped_models():
    res = run_cli("translate", "Ein Mann fährt Fahrrad.", "--src", "de", "--tgt", "xx")
    assert_user_error(res, "de -> xx", "shipped", "--model")
    assert_user_error(run_cli("translate", "Ein Mann fährt Fahrrad."), "--src", "--model")


def test_language_model_checkpoint_is_refused(tmp_path):
    from seqtool.config import LMModelConfig

    tok = WordTokenizer.train(["the cat sat on the mat"])
    mcfg = LMModelConfig(emb_dim=8, hidden=8, layers=1)
    save_checkpoint(tmp_path / "lm", model=build_model("lm", mcfg, tok.vocab_size),
                    config=RunConfig(model=mcfg), tokenizer=tok, card="")
    assert_user_error(run_cli("translate", "the cat", "--model", tmp_path / "lm"),
                      "'lm' checkpoint", "translate")
    assert_user_error(run_cli("evaluate", "translate", "--model", tmp_path / "lm",
                              "--src-file", tmp_path / "a", "--ref-file", tmp_path / "b"),
                      "'lm'")


def test_reference_with_another_line_count(run, data, tmp_path):
    ref = write_side(tmp_path / "ref.txt", data["test_tgt"].read_text().splitlines()[:30])
    res = translate(run, "--reference", ref, stdin=data["test_src"].read_text("utf-8"))
    assert_user_error(res, str(ref), "30 lines", "40 sentences")
    res = run_cli("evaluate", "translate", "--model", run, "--src-file", data["test_src"],
                  "--ref-file", ref, "--device", "cpu")
    assert_user_error(res, "40", "30")


@pytest.mark.parametrize("args,words", [
    (["--beam", "2", "--nbest", "3"], ["--nbest", "--beam"]),
    (["--nbest", "4"], ["--nbest 4", "beam (3)"]),  # translate-tiny's beam is 3
    (["--beam", "0"], ["--beam"]),
    (["--beam", "-1"], ["--beam"]),
    (["--nbest", "0"], ["--nbest"]),
    (["--alpha", "9"], ["--alpha"]),
    (["--max-len-ratio", "-1"], ["--max-len-ratio"]),
    (["--bleu-tokenize", "nope"], ["--bleu-tokenize"]),
    (["--batch-size", "0"], ["--batch-size"]),
])
def test_bad_search_flags(run, data, args, words):
    assert_user_error(translate(run, source_lines(data)[0], *args), *words)


def test_other_bad_input(run, data, tmp_path):
    assert_user_error(translate(run, "   "), "empty")
    assert_user_error(translate(run, "--show-attention", stdin="a\n"), "--show-attention")
    args = [a for a in train_args(data) if a not in ("--valid-tgt", data["valid_tgt"])]
    assert_user_error(run_cli(*args, "--out", tmp_path / "r"), "--valid-src", "--valid-tgt")
    assert_user_error(run_cli("train", "translate", "--corpus", "date", "--src", "a", "--tgt",
                              "b", "--out", tmp_path / "r"), "not a parallel corpus",
                      "multi30k")
    assert_user_error(run_cli("train", "translate", "--config", "translate-tiny",
                              "--out", tmp_path / "r"), "no train data")
    assert_user_error(run_cli("train", "translate", "--resume", run, "--config",
                              "translate-tiny"), "--resume")
    assert_user_error(run_cli("evaluate", "translate", "--model", run, "--src-file",
                              data["test_src"]), "--ref-file")
    assert_user_error(run_cli("evaluate", "translate", "--model", run, "--corpus",
                              "multi30k", "--split", "nope", "--src", "de", "--tgt", "en"),
                      "nope", "test_2016_flickr")


def test_decoding_precision(run, data):
    from seqtool.runtime import decode_precision
    from seqtool.config import SearchConfig

    assert decode_precision(SearchConfig(), "bf16") == "bf16"  # auto: as trained
    assert decode_precision(SearchConfig(), "fp32") == "fp32"
    assert decode_precision(SearchConfig(precision="fp32"), "bf16") == "fp32"
    lines = source_lines(data)[:6]
    outs = {}
    for prec in ("fp32", "bf16"):
        res = translate(run, "--precision", prec, "--beam", "3", stdin="\n".join(lines) + "\n")
        assert res.code == 0, res.err
        outs[prec] = res.out.splitlines()
        assert len(outs[prec]) == len(lines)
    assert_user_error(translate(run, lines[0], "--precision", "fp8"), "--precision")


def test_fp64_decodes_a_float64_copy_the_same_alone_batched_and_on_any_thread_count(run, data):
    """--precision fp64 runs a float64 copy of the model (the loaded one stays fp32),
    and a sentence's translation does not depend on its batch or the thread count.
    (The real-model, other-CPU version: tests/test_reproducible.py.)"""
    import torch

    from seqtool.loading import load_translator
    from seqtool.runtime import for_precision
    from seqtool.translation import search_settings, translate_lines

    loaded = load_translator(run)
    copy64 = for_precision(loaded.model, "fp64")
    assert copy64 is not loaded.model and copy64 is for_precision(loaded.model, "fp64")
    assert {p.dtype for p in copy64.parameters()} == {torch.float64}
    search = search_settings(loaded.config.search, beam_size=3, precision="fp64")
    lines = source_lines(data)[:24]
    before = torch.get_num_threads()
    try:
        outs = []
        for threads, batch, ahead in ((2, 64, 1024), (1, 1, 1), (1, 5, 7)):
            torch.set_num_threads(threads)
            outs.append([(t.texts, t.scores) for t in
                         translate_lines(loaded, lines, search, "cpu", batch, read_ahead=ahead)])
    finally:
        torch.set_num_threads(before)
    assert outs[0] == outs[1] == outs[2]
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}


def test_streams_and_evaluation_keep_freed_memory_for_reuse(run, data, monkeypatch):
    """A stream's and an evaluation's batches reuse freed memory (runtime.py:
    +11-22% sentences/s on the shipped model); one sentence does not ask for it."""
    import seqtool.runtime as runtime

    calls: list[bool] = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(True) or True)
    assert translate(run, "--beam", "1", "Ein Satz .").code == 0 and calls == []
    assert translate(run, "--beam", "1", stdin="\n".join(source_lines(data)[:3])).code == 0
    assert calls == [True]
    res = run_cli("evaluate", "translate", "--model", run, "--src-file", data["test_src"],
                  "--ref-file", data["test_tgt"], "--beam", "1", "--device", "cpu")
    assert res.code == 0 and calls == [True, True], res.err
