"""The same commands on a CUDA device (`--device cuda`): train, resume, predict, generate,
evaluate, translate with beam search, chat; a checkpoint trained on the GPU is read on
the CPU and gives the same numbers. Skipped where torch sees no CUDA device (CI never
has one; run these where a GPU is lent: `pytest -m cuda`)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from cli_runner import run_cli
from safetensors.torch import load_file

from seqtool.data.toy import chars, date_pairs

# SEQTOOL_TEST_DEVICE=cpu runs the same checks on the CPU (to try the file itself).
DEVICE = os.environ.get("SEQTOOL_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                 reason="no CUDA device (torch.cuda.is_available() is False)")]

LM_TEXT = "the cat sat on the mat . a dog ran to the red ball and the cat saw it ."
LM_TINY = ["--config", "lm-tiny", "--set", "model.emb_dim=16", "--set", "model.hidden=16",
           "--set", "train.batch_size=4", "--set", "train.bptt=8", "--set", "train.lr=0.02"]


def ok(*args: str | Path, stdin: str | None = None) -> str:
    res = run_cli(*args, stdin=stdin)
    assert res.code == 0, res.err
    return res.out


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("lm")
    (d / "train.txt").write_text((LM_TEXT + "\n") * 60)
    (d / "valid.txt").write_text((LM_TEXT + "\n") * 10)
    return d / "train.txt", d / "valid.txt"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_lm_trains_predicts_and_evaluates_on_cuda(tmp_path, lm_files, precision):
    out = tmp_path / "run"
    summary = json.loads(ok("train", "lm", "--train-file", lm_files[0], "--valid-file",
                            lm_files[1], *LM_TINY, "--set", "train.epochs=4", "--set",
                            f"train.precision={precision}", "--device", DEVICE, "--out", out,
                            "--json"))
    assert summary["stop_reason"] == "finished"
    cuda = json.loads(ok("predict", "the red", "--model", out, "--device", DEVICE, "--json"))
    assert cuda["prediction"] == "ball"  # it learned the text on the GPU
    cpu = json.loads(ok("predict", "the red", "--model", out, "--device", "cpu", "--json"))
    assert [c["token"] for c in cpu["candidates"][:3]] == \
        [c["token"] for c in cuda["candidates"][:3]]
    assert cpu["candidates"][0]["probability"] == pytest.approx(
        cuda["candidates"][0]["probability"], abs=2e-2)
    gen = json.loads(ok("generate", "the cat", "--model", out, "--device", DEVICE, "--greedy",
                        "--max-tokens", "5", "--json"))
    assert gen["samples"][0].startswith("sat on the")
    ev = [json.loads(ok("evaluate", "lm", "--model", out, "--file", lm_files[1], "--device",
                        dev, "--json")) for dev in (DEVICE, "cpu")]
    assert ev[0]["tokens"] == ev[1]["tokens"] and ev[0]["perplexity"] < 3
    assert ev[0]["perplexity"] == pytest.approx(ev[1]["perplexity"], rel=2e-2)


def test_lm_resume_on_cuda_continues_the_run(tmp_path, lm_files):
    """Stopped after 6 steps and resumed to 12 on the GPU: the weights match a run of 12
    steps (to float tolerance: cuDNN's backward is not bit-reproducible)."""
    common = ["train", "lm", "--train-file", lm_files[0], "--valid-file", lm_files[1],
              *LM_TINY, "--set", "train.epochs=10", "--device", DEVICE, "--json"]
    ok(*common, "--set", "train.max_steps=12", "--out", tmp_path / "one")
    ok(*common, "--set", "train.max_steps=6", "--out", tmp_path / "two")
    two = json.loads(ok("train", "lm", "--resume", tmp_path / "two", "--set",
                        "train.max_steps=12", "--device", DEVICE, "--json"))
    assert two["steps"] == 12
    a = load_file(str(tmp_path / "one" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-3) for k in a)


def write_side(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return path


def test_translate_trains_and_beam_searches_on_cuda(tmp_path):
    files = {}
    for name, n, seed in (("train", 320, 1), ("valid", 24, 2), ("test", 40, 3)):
        pairs = [(chars(s), chars(t)) for s, t in date_pairs(n, seed=seed)]
        files[name] = (write_side(tmp_path / f"{name}.src", [s for s, _ in pairs]),
                       write_side(tmp_path / f"{name}.tgt", [t for _, t in pairs]))
    out = tmp_path / "run"
    summary = json.loads(ok(
        "train", "translate", "--train-src", files["train"][0], "--train-tgt",
        files["train"][1], "--valid-src", files["valid"][0], "--valid-tgt", files["valid"][1],
        "--config", "translate-tiny", "--device", DEVICE, "--out", out, "--json"))
    assert summary["stop_reason"] == "finished" and summary["metric"] == "valid_bleu"
    src = files["test"][0].read_text("utf-8")
    scores = {}
    for dev in (DEVICE, "cpu"):
        r = json.loads(ok("evaluate", "translate", "--model", out, "--src-file",
                          files["test"][0], "--ref-file", files["test"][1], "--beam", "3",
                          "--device", dev, "--json"))
        scores[dev] = r["bleu"]
    assert scores[DEVICE] == pytest.approx(scores["cpu"], abs=2.0)
    lines = ok("translate", "--model", out, "--beam", "3", "--device", DEVICE,
               stdin=src).splitlines()
    assert len(lines) == 40
    nbest = json.loads(ok("translate", src.splitlines()[0], "--model", out, "--beam", "3",
                          "--nbest", "2", "--device", DEVICE, "--json"))
    assert [t["source"] for t in [nbest]] == [src.splitlines()[0]]
    scores = [t["score"] for t in nbest["translations"]]
    assert len(scores) == 2 and scores[0] >= scores[1], nbest


def dialogue_file(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        k = rng.choice(("red", "blue", "green", "gold"))
        turns = ["hello there", f"my colour is {k}", rng.choice(("ok", "sure")), f"you said {k}"]
        lines.append(" __eou__ ".join(turns) + " __eou__")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@pytest.mark.parametrize("arch", ["seq2seq", "hred", "vhred"])
def test_chat_trains_and_replies_on_cuda(tmp_path, arch):
    train = dialogue_file(tmp_path / "train.txt", 200, 1)
    valid = dialogue_file(tmp_path / "valid.txt", 20, 2)
    out = tmp_path / arch
    summary = json.loads(ok("train", "chat", "--train-file", train, "--valid-file", valid,
                            "--config", "chat-tiny", "--model", arch, "--device", DEVICE,
                            "--out", out, "--json"))
    assert summary["stop_reason"] == "finished"
    replies = ok("chat", "--model", out, "--device", DEVICE, "--seed", "1", "--greedy",
                 stdin="hello there\nsure\n").splitlines()
    assert len(replies) == 2
    ev = json.loads(ok("evaluate", "chat", "--model", out, "--file", valid, "--device",
                       DEVICE, "--json"))
    assert ev["perplexity"] > 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_decoder_matches_step_by_step_on_cuda(precision):
    """layers/fused_decoder.py on the device, against the step-by-step autograd path."""
    from seqtool.config import Seq2SeqModelConfig
    from seqtool.models.seq2seq import Seq2Seq

    torch.manual_seed(0)
    m = Seq2Seq(Seq2SeqModelConfig(emb_dim=12, enc_hidden=8, dec_hidden=16, dropout=0.0),
                (40, 30)).to(DEVICE)
    src = torch.randint(4, 40, (7, 5), device=DEVICE)
    src[4:, 1] = 0
    batch = {"src": src, "tgt": torch.randint(4, 30, (6, 5), device=DEVICE)}
    grads = []
    for fused in (True, False):
        m.zero_grad()
        m.decoder.use_fused = fused
        with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16,
                            enabled=precision == "bf16"):
            m.loss(batch).loss_sum.backward()
        grads.append({n: p.grad.float().cpu() for n, p in m.named_parameters()})
    for name, g in grads[0].items():
        if precision == "fp32":
            assert torch.allclose(g, grads[1][name], rtol=1e-3, atol=1e-5), name
        else:
            cos = torch.nn.functional.cosine_similarity(g.flatten(), grads[1][name].flatten(), 0)
            assert cos > 0.99, (name, float(cos))
