"""Dynamic int8 (layers/int8.py): every matrix really int8, outputs close to fp32,
the int8 export round trip exact and unpickled, the flags wired on the CLI."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

from seqtool.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from seqtool.config import (ChatModelConfig, LMModelConfig, RunConfig, SearchConfig,
                            Seq2SeqModelConfig)
from seqtool.data.parallel import pad_batch
from seqtool.data.tokenizer import WordTokenizer
from seqtool.errors import ConfigError
from seqtool.layers.int8 import (Int8Embedding, Int8Linear, Int8RNN, fp32_parts, is_quantized,
                                 quantize_model)
from seqtool.layers.rnn import make_rnn
from seqtool.models import build_model
from seqtool.runtime import decode_precision
from cli_runner import run_cli

WORDS = "the cat sat on a mat and then the dog ran to the red ball".split()
FP32_MODULES = (nn.Linear, nn.Embedding, nn.RNNBase)


def _distinct(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():  # biases start at zero: make every tensor matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def tiny_lm(**kw) -> tuple[nn.Module, RunConfig, WordTokenizer]:
    tok = WordTokenizer.train([" ".join(WORDS)] * 3)
    mcfg = LMModelConfig(**{"emb_dim": 16, "hidden": 24, "layers": 2, "dropout": 0.1,
                            "cell": "lstm", "softmax": "adaptive", "cutoffs": (6, 10),
                            "div_value": 2.0, "tie_weights": True, **kw})
    torch.manual_seed(0)
    return _distinct(build_model("lm", mcfg, tok.vocab_size)), RunConfig(model=mcfg), tok


def tiny_translator(**kw) -> nn.Module:
    torch.manual_seed(0)
    cfg = Seq2SeqModelConfig(**{"emb_dim": 8, "enc_hidden": 8, "dec_hidden": 16, **kw})
    return _distinct(build_model("translate", cfg, (20, 12)))


def lm_log_probs(model: nn.Module) -> torch.Tensor:
    ids = torch.tensor([[2, 5, 9, 13, 4, 7], [3, 3, 11, 6, 8, 12]]).t()  # (T, B)
    with torch.no_grad():
        return model.log_probs(ids)[0]


def s2s_batch() -> dict[str, torch.Tensor]:
    return pad_batch([([5, 6, 7, 8], [4, 5, 6]), ([9, 10], [7, 8])])


def s2s_step(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        state, first = model.start(s2s_batch())
        lp, state = model.step(first, state)
        lp2, _ = model.step(lp.argmax(-1), state)
        return torch.cat([lp, lp2])


def fp32_modules(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, FP32_MODULES)
            and not name.endswith("energy_layer")]


def kl(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    return float((p_log.exp() * (p_log - q_log)).sum(-1).mean())


# --------------------------------------------------------------------------- coverage
def test_lm_every_matrix_is_int8():
    model, _, _ = tiny_lm()
    ref = lm_log_probs(model)
    n_rnn = sum(isinstance(m, nn.LSTM) for m in model.modules())
    quantize_model(model)
    assert is_quantized(model)
    assert fp32_modules(model) == []
    assert fp32_parts(model) == ["out.cluster"]  # the two cluster rows, by design
    assert sum(isinstance(m, Int8RNN) for m in model.modules()) == n_rnn == 1
    assert sum(isinstance(m, Int8Embedding) for m in model.modules()) == 3
    int8 = [k for k, v in model.state_dict().items() if v.dtype == torch.int8]
    assert "rnn.qweight_ih_l1" in int8 and "embed.tables.0.qweight" in int8
    out = lm_log_probs(model)
    assert not torch.equal(out, ref)  # it did change what runs ...
    assert kl(ref, out) < 0.01  # ... and stays close to the fp32 model
    assert torch.allclose(out.exp().sum(-1), torch.ones(out.shape[:-1]), atol=1e-4)


@pytest.mark.parametrize("kw", [{}, {"cell": "lstm", "attention": "general", "enc_layers": 2,
                                     "dec_layers": 2, "tie_target_embeddings": False},
                                {"attention": "dot", "input_feeding": False},
                                {"shared_vocab": True, "bridge": "linear", "dec_hidden": 12}])
def test_translator_every_matrix_is_int8(kw):
    if kw.get("shared_vocab"):
        model = _distinct(build_model("translate", Seq2SeqModelConfig(
            emb_dim=8, enc_hidden=8, dec_hidden=12, shared_vocab=True, bridge="linear"),
            (20, 20)))
    else:
        model = tiny_translator(**kw)
    ref = s2s_step(model)
    quantize_model(model)
    assert fp32_modules(model) == []
    left = fp32_parts(model)
    assert left == (["decoder.attention.energy_layer.weight"]
                    if model.cfg.attention == "bahdanau" else [])
    assert not model.decoder.use_fused  # the fused teacher-forcing path reads fp32 weights
    out = s2s_step(model)
    assert not torch.equal(out, ref) and kl(ref, out) < 0.01
    with torch.no_grad():  # teacher forcing through the int8 step loop
        assert torch.isfinite(model.loss(s2s_batch()).loss_sum)


def test_chat_model_every_matrix_is_int8():
    cfg = ChatModelConfig(arch="vhred", emb_dim=8, enc_hidden=8, ctx_hidden=12, dec_hidden=16,
                          latent_dim=4, context_turns=3, max_utt_len=10, dropout=0.0)
    model = _distinct(build_model("chat", cfg, 30))
    quantize_model(model)
    assert fp32_modules(model) == [] and fp32_parts(model) == []


def test_unquantisable_cells_are_reported_not_hidden():
    model, _, _ = tiny_lm(cell="peephole")
    quantize_model(model)
    assert {"rnn.w_ih.0", "rnn.w_hh.1"} <= set(fp32_parts(model))
    elman = nn.Sequential(make_rnn("rnn_tanh", 8, 8))
    quantize_model(elman)
    assert fp32_parts(elman) == ["0.weight_ih_l0", "0.weight_hh_l0"]


def test_cli_refuses_cells_without_int8_kernel(tmp_path):
    model, cfg, tok = tiny_lm(cell="peephole")
    save_checkpoint(tmp_path / "ck", model=model, config=cfg, tokenizer=tok, card="")
    res = run_cli("predict", "the cat", "--model", tmp_path / "ck", "--quantize", "int8")
    assert res.code == 2 and "peephole" in res.err and "hint: " in res.err
    res = run_cli("export", tmp_path / "ck", tmp_path / "q", "--int8")
    assert res.code == 2 and not (tmp_path / "q").exists()


# --------------------------------------------------------------------------- layers
def test_int8_linear_close_and_per_row():
    torch.manual_seed(0)
    lin = nn.Linear(32, 20)
    with torch.no_grad():
        lin.weight[3] *= 100  # a row with a large range does not cost the others
    q = Int8Linear.from_weight(lin.weight, lin.bias)
    x = torch.randn(7, 5, 32)  # any leading dims
    ref, out = lin(x), q(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    err = (out - ref).abs()
    assert err[..., 3].max() < 0.05 * ref[..., 3].abs().max()
    keep = [i for i in range(20) if i != 3]
    assert err[..., keep].max() < 0.05 * ref[..., keep].abs().max()


@pytest.mark.parametrize("cell,layers,bidir", [("lstm", 2, False), ("gru", 1, True),
                                               ("gru", 2, False)])
def test_int8_rnn_matches_fp32_and_its_own_steps(cell, layers, bidir):
    torch.manual_seed(0)
    rnn = make_rnn(cell, 12, 16, layers, bidirectional=bidir).eval()
    q = Int8RNN.from_rnn(rnn)
    x = torch.randn(6, 3, 12)
    with torch.no_grad():
        ref, _ = rnn(x)
        out, state = q(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 0.05
    if bidir:
        return
    hidden = None
    n = layers
    z = torch.zeros(n, 3, 16)
    hidden = (z, z) if cell == "lstm" else z
    steps = []
    for t in range(6):  # the decoder's one-step path: the same weights and gates; the
        y, hidden = q.step(x[t], hidden)  # activations' int8 scale is per call (one step
        steps.append(y)  # here, all steps at once above), so not to the last bit
    assert (torch.stack(steps) - out).abs().max() < 0.01
    final = state[0] if cell == "lstm" else state
    assert ((hidden[0] if cell == "lstm" else hidden) - final).abs().max() < 0.01


# --------------------------------------------------------------------------- export
def test_int8_folder_round_trip_exact_and_unpickled(tmp_path, monkeypatch):
    from seqtool.commands.info import export_checkpoint

    model, cfg, tok = tiny_lm()
    save_checkpoint(tmp_path / "fp32", model=model, config=cfg, tokenizer=tok, card="# c\n")
    size = export_checkpoint(tmp_path / "fp32", tmp_path / "int8", int8=True)
    assert size < sum(f.stat().st_size for f in (tmp_path / "fp32").iterdir())
    meta = json.loads((tmp_path / "int8" / CONFIG_FILE).read_text())
    assert meta["quantized"] == "int8"
    from safetensors import safe_open

    with safe_open(str(tmp_path / "int8" / WEIGHTS_FILE), "pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes["rnn.qweight_ih_l0"] == "I8" and dtypes["out.tail_proj.0.qweight"] == "I8"

    def forbidden(*a, **k):
        raise AssertionError("checkpoint loading must not unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    back = load_checkpoint(tmp_path / "int8", expect_kind="lm")
    assert is_quantized(back.model) and fp32_parts(back.model) == ["out.cluster"]
    mem = quantize_model(model)
    assert torch.equal(lm_log_probs(back.model), lm_log_probs(mem))


@pytest.mark.parametrize("shared", [False, True])
def test_int8_translator_export_equals_memory(tmp_path, shared):
    from seqtool.commands.info import export_checkpoint

    src = WordTokenizer.train(["a b c d e f g", "h i j"])
    tgt = src if shared else WordTokenizer.train(["u v w x", "y z"])
    mcfg = Seq2SeqModelConfig(emb_dim=8, enc_hidden=8, dec_hidden=16, shared_vocab=shared)
    torch.manual_seed(0)
    model = _distinct(build_model("translate", mcfg, (src.vocab_size, tgt.vocab_size)))
    save_checkpoint(tmp_path / "ck", model=model, config=RunConfig(task="translate", model=mcfg),
                    tokenizer=src, tgt_tokenizer=tgt, card="")
    export_checkpoint(tmp_path / "ck", tmp_path / "q", int8=True)
    back = load_checkpoint(tmp_path / "q", expect_kind="translate").model
    batch = pad_batch([([4, 5, 6], [4, 5]), ([7, 8], [6])])
    mem = quantize_model(model)
    with torch.no_grad():
        sa, ta = back.start(batch)
        sb, tb = mem.start(batch)
        assert torch.equal(back.step(ta, sa)[0], mem.step(tb, sb)[0])


def test_decode_precision_of_an_int8_model():
    auto, fp64 = SearchConfig(), SearchConfig(precision="fp64")
    assert decode_precision(auto, "bf16", quantized=True) == "fp32"
    assert decode_precision(auto, "bf16") == "bf16"
    with pytest.raises(ConfigError):
        decode_precision(fp64, "bf16", quantized=True)


# --------------------------------------------------------------------------- CLI
def test_cli_quantize_and_export(tmp_path):
    model, cfg, tok = tiny_lm()
    save_checkpoint(tmp_path / "ck", model=model, config=cfg, tokenizer=tok, card="# c\n")
    plain = run_cli("predict", "the cat sat", "--model", tmp_path / "ck", "--json")
    int8 = run_cli("predict", "the cat sat", "--model", tmp_path / "ck", "--json",
                   "--quantize", "int8")
    assert plain.code == 0 and int8.code == 0, int8.err
    p, q = json.loads(plain.out), json.loads(int8.out)
    assert p["candidates"] != q["candidates"]  # int8 ran
    assert [c["token"] for c in p["candidates"][:2]] == [c["token"] for c in q["candidates"][:2]]
    res = run_cli("export", tmp_path / "ck", tmp_path / "q", "--int8")
    assert res.code == 0 and "wrote" in res.out
    again = run_cli("predict", "the cat sat", "--model", tmp_path / "q", "--json")
    assert again.code == 0 and json.loads(again.out) == q  # the folder is int8 already
    gen = run_cli("generate", "the cat", "--model", tmp_path / "q", "--seed", "1",
                  "--max-tokens", "5", "--quantize", "int8")
    assert gen.code == 0, gen.err
    for args in (("predict", "the", "--model", tmp_path / "ck", "--quantize", "int8",
                  "--device", "cuda"),
                 ("export", tmp_path / "ck", tmp_path / "x", "--int8", "--half")):
        bad = run_cli(*args)
        assert bad.code == 2 and bad.err.startswith("error: ") and "hint: " in bad.err
        assert "CPU" in bad.err or "--half" in bad.err
        assert "Traceback" not in bad.err


def test_api_load_quantize(tmp_path):
    import seqtool

    model, cfg, tok = tiny_lm()
    save_checkpoint(tmp_path / "ck", model=model, config=cfg, tokenizer=tok, card="")
    m = seqtool.load(tmp_path / "ck", quantize="int8")
    assert m.device == "cpu" and is_quantized(m.loaded.model)
    with pytest.raises(ConfigError):
        seqtool.load(tmp_path / "ck", quantize="int4")


def test_cli_translate_int8(tmp_path):
    src = WordTokenizer.train(["a b c d e f g", "h i j"])
    tgt = WordTokenizer.train(["u v w x", "y z"])
    mcfg = Seq2SeqModelConfig(emb_dim=8, enc_hidden=8, dec_hidden=16)
    torch.manual_seed(0)
    model = _distinct(build_model("translate", mcfg, (src.vocab_size, tgt.vocab_size)))
    save_checkpoint(tmp_path / "ck", model=model, config=RunConfig(task="translate", model=mcfg),
                    tokenizer=src, tgt_tokenizer=tgt, card="")
    one = run_cli("translate", "a b c", "--model", tmp_path / "ck", "--quantize", "int8",
                  "--beam", "3", "--json")
    assert one.code == 0, one.err
    assert json.loads(one.out)["translations"][0]["text"]
    lines = run_cli("translate", "--model", tmp_path / "ck", "--quantize", "int8",
                    stdin="a b c\nh i j\n")
    assert lines.code == 0 and len(lines.out.splitlines()) == 2
    fp64 = run_cli("translate", "a b", "--model", tmp_path / "ck", "--quantize", "int8",
                   "--precision", "fp64")
    assert fp64.code == 2 and "fp64" in fp64.err and "hint: " in fp64.err


def test_int8_exports_are_not_averaged(tmp_path):
    from seqtool.commands.info import export_checkpoint

    model, cfg, tok = tiny_lm()
    for name in ("a", "b"):
        save_checkpoint(tmp_path / name, model=model, config=cfg, tokenizer=tok, card="")
        export_checkpoint(tmp_path / name, tmp_path / f"{name}8", int8=True)
    res = run_cli("average", tmp_path / "a8", tmp_path / "b8", "--out", tmp_path / "avg")
    assert res.code == 2 and "int8" in res.err and "hint: " in res.err
