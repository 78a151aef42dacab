"""The attention seq2seq model on the step protocol, its layers, and parallel data."""

from __future__ import annotations

import math

import pytest
import torch

from seqtool.config import Seq2SeqModelConfig
from seqtool.configfile import build_config
from seqtool.data.buckets import bucket_batches
from seqtool.data.parallel import (
    ParallelData,
    encode_pairs,
    pad_batch,
    read_parallel,
    source_batches,
)
from seqtool.data.tokenizer import BOS, EOS, PAD, WordTokenizer
from seqtool.errors import ConfigError, DataError
from seqtool.layers.encoder import RecurrentEncoder, flip_padded
from seqtool.models import build_model
from seqtool.models.lm import count_parameters

SRC_V, TGT_V = 20, 12


def tiny(**kw):
    torch.manual_seed(0)
    cfg = Seq2SeqModelConfig(**{"emb_dim": 8, "enc_hidden": 8, "dec_hidden": 16, **kw})
    return build_model("translate", cfg, (SRC_V, TGT_V))


CONFIGS = {
    "default": {},
    "lstm-general-2x2": {"cell": "lstm", "attention": "general", "enc_layers": 2,
                         "dec_layers": 2, "dropout": 0.3},
    "gru-dot-nofeed": {"attention": "dot", "input_feeding": False},
    "rnn_tanh-linear-bridge": {"cell": "rnn_tanh", "bridge": "linear", "dec_hidden": 12},
    "rnn_relu-uni-none-bridge": {"cell": "rnn_relu", "bidirectional": False,
                                 "bridge": "none"},
    "reverse-peeky": {"reverse_source": True, "peeky": True},
    "peeky-nofeed": {"peeky": True, "input_feeding": False, "attention": "general"},
    "no-attention-peeky": {"attention": "none", "peeky": True, "bidirectional": False,
                           "enc_hidden": 16, "cell": "lstm"},
    "tied": {"tie_target_embeddings": True},
}

PAIRS = [([5, 6, 7, 8, 9, 10, 11], [4, 5, 6]), ([7, 8], [9, 10, 4, 4, 5]),
         ([12, 13, 14, 15], [6])]


def test_default_size_matches_the_peers():
    """shared/peers/NOTES.md: JoeyNMT has 967,424 (date) and 4,227,584 (multi30k)."""
    cfg = Seq2SeqModelConfig()
    assert sum(count_parameters(build_model("translate", cfg, (61, 15))).values()) == 967_424
    big = build_model("translate", cfg, (7882, 5898))
    assert sum(p.numel() for p in big.parameters()) == 4_227_584
    assert big.out.bias is None


def test_config_is_registered_and_checked():
    cfg = build_config({"task": "translate", "model": {"cell": "lstm", "attention": "dot"}})
    assert isinstance(cfg.model, Seq2SeqModelConfig) and cfg.model.cell == "lstm"
    with pytest.raises(ConfigError, match="attention"):
        build_config({"task": "translate", "model": {"attention": "luong"}})
    with pytest.raises(ConfigError, match="dec_hidden"):
        tiny(dec_hidden=12)  # bridge "last" needs 2 x 8 == 12
    with pytest.raises(ConfigError, match="dot"):
        tiny(dec_hidden=12, bridge="linear", attention="dot")
    with pytest.raises(ConfigError, match="shared_vocab"):
        tiny(shared_vocab=True)


def test_tying_and_shared_vocabulary_share_parameters():
    base = sum(p.numel() for p in tiny().parameters())
    tied = tiny(tie_target_embeddings=True)
    assert tied.out.weight is tied.tgt_embed.weight
    # output 12 x 16 removed, a 16 -> 8 projection added
    assert sum(p.numel() for p in tied.parameters()) == base - TGT_V * 16 + 16 * 8
    torch.manual_seed(0)
    shared = build_model("translate", Seq2SeqModelConfig(
        emb_dim=8, enc_hidden=8, dec_hidden=16, shared_vocab=True,
        tie_target_embeddings=True), SRC_V)
    assert shared.src_embed is shared.tgt_embed and shared.out.weight is shared.src_embed.weight


@torch.no_grad()
def stepwise_nll(model, batch) -> float:
    state, tok = model.start(batch)
    assert torch.equal(tok, torch.full((batch["src"].shape[1],), BOS))
    total = 0.0
    for t in range(batch["tgt"].shape[0]):
        lp, state = model.step(tok, state)
        gold = batch["tgt"][t]
        total -= float((lp.gather(1, gold[:, None])[:, 0] * (gold != PAD)).sum())
        tok = gold
    return total


@pytest.mark.parametrize("name", CONFIGS)
def test_loss_equals_step_by_step_decoding(name):
    """Teacher forcing (fused or looped) and the step protocol compute the same model."""
    model = tiny(**CONFIGS[name]).eval()
    batch = pad_batch(PAIRS)
    with torch.no_grad():
        res = model.loss(batch)
    assert res.tokens == sum(len(t) + 1 for _, t in PAIRS) and res.carry is None
    assert float(res.loss_sum) == pytest.approx(stepwise_nll(model, batch), rel=1e-5)
    # gradients reach every parameter
    model.train()
    model.loss(batch).loss_sum.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", ["default", "lstm-general-2x2", "reverse-peeky",
                                  "no-attention-peeky"])
def test_padding_does_not_change_a_sentence(name):
    """A sentence alone, or next to a longer one, gets the same encoding and the same
    output distributions."""
    model = tiny(**CONFIGS[name]).eval()
    both, alone = pad_batch(PAIRS[:2]), pad_batch(PAIRS[1:2])
    with torch.no_grad():
        s_both, s_alone = model.encode(both), model.encode(alone)
        if "memory" in s_both:
            n = len(PAIRS[1][0])
            assert torch.allclose(s_both["memory"][:n, 1], s_alone["memory"][:n, 0], atol=1e-6)
        h_both = s_both["hidden"][0] if isinstance(s_both["hidden"], tuple) else s_both["hidden"]
        h_alone = (s_alone["hidden"][0] if isinstance(s_alone["hidden"], tuple)
                   else s_alone["hidden"])
        assert torch.allclose(h_both[:, 1], h_alone[:, 0], atol=1e-6)
        (lp_both, _), (lp_alone, _) = (model.step(torch.full((b["src"].shape[1],), BOS),
                                                  model.encode(b)) for b in (both, alone))
    assert torch.allclose(lp_both[1], lp_alone[0], atol=1e-5)


def test_encoder_backward_direction_reads_within_the_length():
    torch.manual_seed(0)
    enc = RecurrentEncoder("gru", 4, 3, layers=2, bidirectional=True).eval()
    x = torch.randn(5, 1, 4)
    with torch.no_grad():
        full = enc(x, torch.tensor([5]))
        padded = enc(torch.cat([x, torch.randn(3, 1, 4)]), torch.tensor([5]))
        ref = torch.nn.GRU(4, 3, bidirectional=True)  # first layer against torch's own
        for d, rnn in (("", enc.fwd[0]), ("_reverse", enc.bwd[0])):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, f"{name}_l0{d}").copy_(getattr(rnn, f"{name}_l0"))
        out_ref, h_ref = ref(x)
        first_layer = torch.cat([enc.fwd[0](x)[0], flip_padded(enc.bwd[0](x.flip(0))[0],
                                                                torch.tensor([5]))], 2)
    assert torch.allclose(first_layer, out_ref, atol=1e-6)
    assert torch.allclose(padded.memory[:5], full.memory, atol=1e-6)
    assert torch.allclose(padded.final, full.final, atol=1e-6)
    assert torch.allclose(full.final, torch.cat([full.memory[4, :, :3], full.memory[0, :, 3:]],
                                                1))
    ids = torch.tensor([[1, 5], [2, 6], [3, 0]])
    assert flip_padded(ids, torch.tensor([3, 2])).tolist() == [[3, 6], [2, 5], [1, 0]]


@pytest.mark.parametrize("attention", ["bahdanau", "dot", "general"])
def test_attention_weights_sum_to_one_and_skip_padding(attention):
    model = tiny(attention=attention).eval()
    batch = pad_batch(PAIRS)
    with torch.no_grad():
        state, tok = model.start(batch)
        for t in range(3):
            _, state = model.step(tok, state)
            w = model.attention_weights(state)  # (B, S)
            assert w.shape == (3, batch["src"].shape[0])
            assert torch.allclose(w.sum(1), torch.ones(3), atol=1e-6)
            assert float(w[~batch["src_mask"].t()].abs().sum()) == 0.0
            tok = batch["tgt"][t]
    assert model.attention_weights(tiny(attention="none").start(batch)[0]) is None


def test_reverse_source_keeps_attention_in_source_order():
    model = tiny(reverse_source=True, bidirectional=False, enc_hidden=16).eval()
    batch = pad_batch(PAIRS[:1])
    with torch.no_grad():
        state = model.encode(batch)
        enc = model.encoder(model.src_embed(batch["src"].flip(0)), batch["src_len"])
    assert torch.allclose(state["memory"], enc.memory.flip(0), atol=1e-6)


@pytest.mark.parametrize("name", ["default", "lstm-general-2x2", "no-attention-peeky"])
def test_reorder_selects_and_duplicates_rows(name):
    model = tiny(**CONFIGS[name]).eval()
    batch = pad_batch(PAIRS)
    index = torch.tensor([2, 0, 0, 1])
    with torch.no_grad():
        state, tok = model.start(batch)
        lp, state = model.step(tok, state)
        nxt = lp.argmax(-1)
        lp_all, _ = model.step(nxt, state)
        lp_re, state_re = model.step(nxt[index], model.reorder(state, index))
    assert torch.allclose(lp_re, lp_all[index], atol=1e-6)
    if "attn" in state_re:
        rows = (state_re["memory"].shape[1] if "memory" in state_re
                else state_re["mem_b"].shape[0])  # the fused step's layout: (rows, S, K)
        assert rows == 4 and state_re["attn"].shape[0] == 4


def test_label_smoothing():
    batch = pad_batch(PAIRS)
    plain = tiny().train()
    logits_nll = stepwise_nll(plain.eval(), batch)
    plain.train()
    assert float(plain.loss(batch).loss_sum.detach()) == pytest.approx(logits_nll, rel=1e-5)
    eps = 0.1
    smooth = tiny(label_smoothing=eps)
    smooth.load_state_dict(plain.state_dict())
    # validation (eval mode) reports the plain NLL
    assert float(smooth.eval().loss(batch).loss_sum.detach()) == pytest.approx(logits_nll,
                                                                               rel=1e-5)
    # training: (1 - eps) * NLL + eps * mean over the vocabulary of -log p
    with torch.no_grad():
        state, tok = smooth.start(batch)
        uniform = 0.0
        for t in range(batch["tgt"].shape[0]):
            lp, state = smooth.step(tok, state)
            uniform -= float((lp.mean(1) * (batch["tgt"][t] != PAD)).sum())
            tok = batch["tgt"][t]
    got = float(smooth.train().loss(batch).loss_sum.detach())
    assert got == pytest.approx((1 - eps) * logits_nll + eps * uniform, rel=1e-5)


def test_overfits_one_batch():
    model = tiny()
    batch = pad_batch(PAIRS)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(60):
        res = model.loss(batch)
        opt.zero_grad()
        (res.loss_sum / res.tokens).backward()
        opt.step()
    final = float(res.loss_sum.detach()) / res.tokens
    assert final < 0.05, final
    assert final < math.log(TGT_V)


# --------------------------------------------------------------------------- data


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    return path


def test_read_parallel_misaligned_names_both_files(tmp_path):
    src = write(tmp_path / "train.de", ["a b", "c d", "e"])
    tgt = write(tmp_path / "train.en", ["x", "y"])
    with pytest.raises(DataError) as err:
        read_parallel(src, tgt)
    msg = err.value.message
    assert "train.de" in msg and "train.en" in msg and "3" in msg and "2" in msg


def test_read_parallel_skips_and_counts_empty_pairs(tmp_path):
    src = write(tmp_path / "s", ["a b", "", "c", "d e", "  "])
    tgt = write(tmp_path / "t", ["x", "y", "", "z", "w"])
    s, t, skipped = read_parallel(src, tgt)
    assert (s, t, skipped) == (["a b", "d e"], ["x", "z"], 3)
    with pytest.raises(DataError):
        read_parallel(write(tmp_path / "e1", ["a", ""]), write(tmp_path / "e2", ["", "b"]))


def test_pad_batch_layout():
    b = pad_batch(PAIRS)
    assert b["src"].shape == (7, 3) and b["tgt"].shape == (6, 3)
    assert b["src_len"].tolist() == [7, 2, 4] and b["tgt_len"].tolist() == [4, 6, 2]
    assert b["src"][:, 1].tolist() == [7, 8] + [PAD] * 5
    assert b["tgt"][:, 2].tolist() == [6, EOS] + [PAD] * 4
    assert torch.equal(b["src_mask"], b["src"] != PAD)


def test_bucketed_batches_are_deterministic_cover_everything_and_cut_padding():
    g = torch.Generator().manual_seed(0)
    lengths = [(int(n), int(n) + 1) for n in torch.randint(1, 50, (1000,), generator=g)]
    epoch0 = bucket_batches(lengths, 16, seed=3, epoch=0, pool_batches=10)
    assert epoch0 == bucket_batches(lengths, 16, seed=3, epoch=0, pool_batches=10)
    assert epoch0 != bucket_batches(lengths, 16, seed=3, epoch=1, pool_batches=10)
    assert epoch0 != bucket_batches(lengths, 16, seed=4, epoch=0, pool_batches=10)
    assert sorted(i for b in epoch0 for i in b) == list(range(1000))
    assert len(epoch0) == math.ceil(1000 / 16)
    assert sum(len(b) < 16 for b in epoch0) == 1

    def padding(batches):
        return sum(max(lengths[i][0] for i in b) * len(b) - sum(lengths[i][0] for i in b)
                   for b in batches)
    unsorted = bucket_batches(lengths, 16, seed=3, epoch=0, pool_batches=1)  # random
    assert padding(epoch0) < padding(unsorted) / 4


def test_parallel_training_batches_sort_by_target_length_first():
    # source and target lengths disagree: a batch can have short targets or short
    # sources, not both; the decoder's steps (the target) are the ones to save
    g = torch.Generator().manual_seed(0)
    pairs = [([5] * int(n), [6] * int(m)) for n, m in torch.randint(1, 40, (640, 2), generator=g)]
    data = ParallelData(pairs, pairs[:3], batch_size=32, seed=1)
    batches = list(data.train_batches(0))
    tgt_steps = sum(b["tgt"].shape[0] * b["tgt"].shape[1] for b in batches)
    src_steps = sum(b["src"].shape[0] * b["src"].shape[1] for b in batches)
    real_tgt = data.tokens_per_epoch()
    assert real_tgt == sum(len(t) + 1 for _, t in pairs)
    assert tgt_steps < 1.1 * real_tgt < src_steps  # padded target steps nearly none


def test_parallel_data_feeds_the_trainer_interface():
    tok_s = WordTokenizer.train(["a b c d"])
    tok_t = WordTokenizer.train(["x y z"])
    pairs = encode_pairs(["a b", "c", "d a b", "zzz"] * 5, ["x", "y z", "z", "x"] * 5,
                         tok_s, tok_t)
    data = ParallelData(pairs, pairs[:3], batch_size=3, seed=1)
    assert data.metric == "valid_ppl" and data.higher_is_better is False
    batches = list(data.train_batches(0))
    assert len(batches) == data.steps_per_epoch() == 7
    assert sum(int((b["tgt"] != PAD).sum()) for b in batches) == data.tokens_per_epoch()
    assert [b["src"].tolist() for b in data.train_batches(0)] == [b["src"].tolist()
                                                                    for b in batches]
    assert sum(b["src"].shape[1] for b in data.valid_batches()) == 3
    order, b = next(source_batches([[4, 5, 6], [7], []], 8))
    assert order == [2, 1, 0] and b["src_len"].tolist() == [1, 1, 3]
    with pytest.raises(DataError):
        ParallelData(pairs, [], batch_size=3)
