"""Dialogue models and data: windows and batches, the DailyDialog / asdc readers,
the step protocol (step by step == teacher forcing, padding invariance, beam 1
== greedy), VHRED's KL, annealing schedules, word dropout and bag-of-words loss,
the save/load round trip, and the synthetic task where the right reply depends
on the utterance two turns back: HRED learns it, the single-turn seq2seq cannot."""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import pytest
import torch

from seqtool.checkpoint import load_checkpoint, save_checkpoint
from seqtool.config import ChatModelConfig, RunConfig
from seqtool.configfile import load_config
from seqtool.data.dialogue import (
    Dialogue,
    DialogueData,
    Example,
    context_batch,
    encode_windows,
    pad_dialogue_batch,
    parse_eou_lines,
    read_asdc,
    read_dailydialog,
    windows,
)
from seqtool.data.tokenizer import BOS, EOS, PAD, UNK, WordTokenizer
from seqtool.decoding import decode
from seqtool.errors import ConfigError
from seqtool.models import build_model
from seqtool.models.vhred import gaussian_kl, kl_weight
from seqtool.search import beam_search

ARCHS = ("seq2seq", "hred", "vhred")
VOCAB = 24


def tiny(arch: str = "hred", **kw) -> ChatModelConfig:
    base = {"arch": arch, "emb_dim": 8, "enc_hidden": 8, "ctx_hidden": 12, "dec_hidden": 16,
            "latent_dim": 4, "context_turns": 3, "max_utt_len": 10, "dropout": 0.0}
    return ChatModelConfig(**{**base, **kw})


def examples() -> list[Example]:
    return [Example([[5, 6, 7], [8, 9]], [10, 11, 12]), Example([[4]], [13]),
            Example([[5, 6], [7], [8, 9, 10, 11]], [6, 7])]


# --------------------------------------------------------------------------- data
def test_windows_cover_every_reply_with_its_context():
    d = [Dialogue(["a", "b", "c", "d", "e"]), Dialogue(["x"])]
    got = list(windows(d, 2))
    assert got == [(["a"], "b"), (["a", "b"], "c"), (["b", "c"], "d"), (["c", "d"], "e")]


def test_batch_layout_is_left_aligned_and_time_major():
    b = pad_dialogue_batch(examples())
    assert b["ctx"].shape == (4, 3, 3) and b["tgt"].shape == (4, 3)
    assert b["turns"].tolist() == [2, 1, 3]
    assert b["ctx_len"].tolist() == [[3, 1, 2], [2, 0, 1], [0, 0, 4]]
    assert b["ctx"][:, 1, 0].tolist() == [8, 9, PAD, PAD]  # second turn of row 0
    assert b["tgt"][:, 1].tolist() == [13, EOS, PAD, PAD]
    assert "tgt" not in context_batch([[5, 6]], rows=3) and \
        context_batch([[5, 6]], rows=3)["ctx"].shape == (2, 1, 3)


def test_encoding_truncates_context_at_the_front_and_replies_at_the_end():
    tok = WordTokenizer.train(["a b c d e f"])
    ex = encode_windows([Dialogue(["a b c d e", "b c d e f"])], tok, 3, max_len=2)
    assert ex[0].context == [tok.encode("d e")] and ex[0].reply == tok.encode("b c")
    ex = encode_windows([Dialogue(["zzz", "a"])], tok, 3, max_len=5)
    assert ex[0].context == [[UNK]]


def test_dialogue_data_epochs_are_deterministic_and_complete():
    ex = examples() * 7
    data = DialogueData(ex, ex[:2], batch_size=4, seed=3)
    first = [b["tgt"].shape[1] for b in data.train_batches(0)]
    assert sum(first) == len(ex) and data.steps_per_epoch() == len(first)
    again = [b["ctx"] for b in data.train_batches(0)]
    assert all(torch.equal(x, y) for x, y in zip(again, [b["ctx"] for b in
                                                         data.train_batches(0)], strict=False))


def test_parse_eou_lines_and_dailydialog_zip(tmp_path):
    text = ("Say , Jim , how about beers ? __eou__ Good idea . __eou__ \n"
            "Can you do push-ups ? __eou__ Of course I can . __eou__ Really ? __eou__\n\n")
    assert [d.turns for d in parse_eou_lines(text.splitlines())] == [
        ["Say , Jim , how about beers ?", "Good idea ."],
        ["Can you do push-ups ?", "Of course I can .", "Really ?"]]
    path = tmp_path / "validation.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("validation/dialogues_validation.txt", text)
        zf.writestr("validation/dialogues_act_validation.txt", "2 3 \n2 1\n")
        zf.writestr("validation/dialogues_emotion_validation.txt", "0 4 \n0 0 6\n")
    dialogues = read_dailydialog(path)
    assert len(dialogues) == 2 and dialogues[1].turns[2] == "Really ?"
    assert dialogues[0].acts == [2, 3] and dialogues[0].emotions == [0, 4]
    assert dialogues[1].acts is None and dialogues[1].emotions == [0, 0, 6]  # count differs


def test_read_asdc_joins_one_speakers_messages_and_splits_by_purpose(tmp_path):
    (tmp_path / "dialog_json").mkdir()
    utts = [{"name": "operator_1", "text": "こんにちは。\nどちらへ?"},
            {"name": "customer_1", "text": "福島です。"},
            {"name": "customer_1", "text": "4人です。", "text_fixed": "4名です。"},
            {"name": "operator_1", "text": "かしこまりました。"}]
    for i, purpose in enumerate(("train", "dev", "test")):
        (tmp_path / "dialog_json" / f"00{i}.json").write_text(json.dumps(
            {"meta": {"purpose": purpose}, "utterances": utts}, ensure_ascii=False), "utf-8")
    train = read_asdc(tmp_path, "train")
    assert len(train) == 1 and len(read_asdc(tmp_path, "valid")) == 1
    assert train[0].turns == ["こんにちは。 どちらへ?", "福島です。 4名です。",
                              "かしこまりました。"]
    assert train[0].speakers == ["operator_1", "customer_1", "operator_1"]


# --------------------------------------------------------------------------- step protocol
@pytest.mark.parametrize("attention", ["none", "bahdanau"])
@pytest.mark.parametrize("arch", ARCHS)
def test_step_by_step_equals_teacher_forcing(arch, attention):
    torch.manual_seed(0)
    model = build_model("chat", tiny(arch, attention=attention), VOCAB).eval()
    batch = pad_dialogue_batch(examples())
    state, tokens = model.start(batch)
    forced = torch.log_softmax(model.forced_logits(state, batch["tgt"]), -1)  # (T, B, V)
    for t in range(batch["tgt"].shape[0]):
        lp, state = model.step(tokens, state)
        torch.testing.assert_close(lp, forced[t], atol=1e-5, rtol=1e-5)
        tokens = batch["tgt"][t]


@pytest.mark.parametrize("arch", ARCHS)
def test_a_reply_scores_the_same_alone_and_in_a_padded_batch(arch):
    torch.manual_seed(0)
    model = build_model("chat", tiny(arch, attention="bahdanau"), VOCAB).eval()
    ex = examples()
    z = torch.randn(3, 4)
    batch = {**pad_dialogue_batch(ex), "z": z}
    state, _ = model.start(batch)
    together = model.forced_logits(state, batch["tgt"])
    for i, e in enumerate(ex):
        one = {**pad_dialogue_batch([e]), "z": z[i: i + 1]}
        alone = model.forced_logits(model.start(one)[0], one["tgt"])
        steps = len(e.reply) + 1
        torch.testing.assert_close(alone[:steps, 0], together[:steps, i], atol=1e-5, rtol=1e-5)


def test_context_changes_the_hred_reply_but_not_the_seq2seq_one():
    torch.manual_seed(0)
    earlier = [Example([[5, 6], [7, 8]], [9]), Example([[11, 12], [7, 8]], [9])]
    for arch, differs in (("hred", True), ("seq2seq", False)):
        model = build_model("chat", tiny(arch), VOCAB).eval()
        b = pad_dialogue_batch(earlier)
        lp, _ = model.step(*model.start(b)[::-1])
        assert (not torch.allclose(lp[0], lp[1])) == differs, arch


def test_beam_one_is_greedy_for_hred():
    torch.manual_seed(0)
    model = build_model("chat", tiny("hred", attention="general"), VOCAB).eval()
    batch = pad_dialogue_batch(examples())
    del batch["tgt"]
    greedy = decode(model, batch, 6, eos=EOS, banned=(PAD, BOS))
    beams = beam_search(model, batch, beam_size=1, max_len=6, banned=(PAD, BOS))
    assert [h[0].tokens for h in beams] == greedy.tokens


# --------------------------------------------------------------------------- VHRED
def test_kl_schedules():
    assert kl_weight(0, "none", 10) == 1.0
    assert [kl_weight(s, "linear", 10) for s in (0, 5, 10, 50)] == [0.0, 0.5, 1.0, 1.0]
    cyc = [kl_weight(s, "cyclical", 10, cycles=2, ratio=0.5) for s in range(22)]
    assert cyc[:6] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and cyc[6:10] == [1.0] * 4
    assert cyc[10] == 0.0 and cyc[15] == 1.0 and cyc[20:] == [1.0, 1.0]  # after 2 cycles: 1
    with pytest.raises(ValueError, match="linear"):
        kl_weight(0, "exponential", 10)


def test_gaussian_kl_is_zero_for_equal_and_positive_otherwise():
    mu, lv = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.allclose(gaussian_kl(mu, lv, mu, lv), torch.zeros(3), atol=1e-6)
    assert bool((gaussian_kl(mu + 1, lv, mu, lv) > 0).all())
    # against torch.distributions
    p = torch.distributions.Normal(mu, (0.5 * lv).exp())
    q = torch.distributions.Normal(mu + 1, (0.25 * lv).exp())
    want = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu + 1, 0.5 * lv, mu, lv), want)


def test_vhred_loss_reports_kl_and_the_bound_is_deterministic():
    torch.manual_seed(0)
    model = build_model("chat", tiny("vhred"), VOCAB).eval()
    batch = pad_dialogue_batch(examples())
    with torch.no_grad():
        a, b = model.loss(batch), model.loss(batch)
    assert a.extra["kl_total"] > 0 and a.extra["replies"] == 3
    assert float(a.loss_sum) == float(b.loss_sum)  # a fixed z draw in evaluation
    kl = model.kl_per_reply(batch)
    assert kl.shape == (3,) and abs(float(kl.sum()) - a.extra["kl_total"]) < 1e-4
    hred = build_model("chat", tiny("hred"), VOCAB).eval()
    assert hred.loss(batch).extra == {}


def test_vhred_training_weighs_the_kl_by_the_schedule_and_counts_steps():
    batch = pad_dialogue_batch(examples())
    res, models = {}, {}
    for schedule in ("none", "linear"):
        torch.manual_seed(0)
        models[schedule] = build_model("chat", tiny("vhred", kl_anneal=schedule,
                                                    kl_anneal_steps=4, bow_weight=0.0,
                                                    word_dropout=0.0), VOCAB).train()
        torch.manual_seed(1)  # the same z draw for both
        res[schedule] = models[schedule].loss(batch)
    # step 0: beta 1 without annealing, 0 with it; the difference is the KL itself
    diff = float(res["none"].loss_sum.detach() - res["linear"].loss_sum.detach())
    assert abs(diff - res["none"].extra["kl_total"]) < 1e-4
    linear = models["linear"]
    assert int(linear.kl_step) == 1 and linear.kl_beta() == 0.25
    linear.eval().loss(batch)  # evaluation does not advance the schedule
    assert int(linear.kl_step) == 1


def test_kl_capacity_pulls_the_kl_towards_its_target_from_both_sides():
    model = build_model("chat", tiny("vhred", kl_target=2.0), VOCAB)
    for kls, sign in (([0.5, 1.5], -1.0), ([3.0, 4.0], 1.0)):
        kl = torch.tensor(kls, requires_grad=True)
        penalty = model.kl_penalty(kl)
        (grad,) = torch.autograd.grad(penalty, kl)
        assert abs(float(penalty.detach()) - abs(sum(kls) / 2 - 2.0) * 2) < 1e-6
        assert bool((grad * sign > 0).all())  # below C: raise the KL; above: lower it
    plain = build_model("chat", tiny("vhred"), VOCAB)  # kl_target 0: the plain KL
    assert float(plain.kl_penalty(torch.tensor([0.5, 1.5]))) == 2.0
    # training a few steps with C = 3 moves the batch KL towards 3 (it starts near 0)
    torch.manual_seed(0)
    model = build_model("chat", tiny("vhred", kl_target=3.0, kl_anneal="none",
                                     bow_weight=0.0, word_dropout=0.0), VOCAB).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    batch = pad_dialogue_batch(examples())
    first = float(model.kl_per_reply(batch).mean())
    for _ in range(60):
        opt.zero_grad()
        model.loss(batch).loss_sum.backward()
        opt.step()
    last = float(model.kl_per_reply(batch).mean())
    assert abs(last - 3.0) < abs(first - 3.0) / 2, (first, last)


def test_word_dropout_only_in_training():
    model = build_model("chat", tiny("vhred", word_dropout=1.0), VOCAB)
    tgt = pad_dialogue_batch(examples())["tgt"]
    plain = torch.cat([torch.full_like(tgt[:1], BOS), tgt[:-1]])
    assert torch.equal(model.eval().decoder_input(tgt), plain)
    dropped = model.train().decoder_input(tgt)
    keep = (plain == PAD) | (plain == BOS)
    assert torch.equal(dropped[keep], plain[keep]) and bool((dropped[~keep] == UNK).all())


def test_bag_of_words_loss_trains_the_bow_layer():
    torch.manual_seed(0)
    with_bow = build_model("chat", tiny("vhred", bow_weight=1.0), VOCAB).train()
    no_bow = build_model("chat", tiny("vhred", bow_weight=0.0), VOCAB)
    assert with_bow.bow is not None and no_bow.bow is None
    with_bow.loss(pad_dialogue_batch(examples())).loss_sum.backward()
    assert with_bow.bow[0].weight.grad is not None
    assert float(with_bow.bow[0].weight.grad.abs().sum()) > 0


def test_start_draws_one_z_per_row_and_z_changes_the_next_word():
    torch.manual_seed(0)
    model = build_model("chat", tiny("vhred"), VOCAB).eval()
    batch = context_batch([[5, 6], [7]], rows=4)
    state, tokens = model.start(batch)
    assert state["z"].shape == (4, 4) and len({tuple(r) for r in state["z"].tolist()}) == 4
    lp, _ = model.step(tokens, state)
    assert not torch.allclose(lp[0], lp[1])
    fixed = {**batch, "z": torch.zeros(4, 4)}
    lp, _ = model.step(*model.start(fixed)[::-1])
    assert torch.allclose(lp[0], lp[3])  # the same z, the same distribution


# --------------------------------------------------------------------------- checkpoint
@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip(tmp_path, arch):
    torch.manual_seed(0)
    tok = WordTokenizer.train(["a b c d e f g h i j k l m n o p q r s t"])
    cfg = RunConfig(task="chat", model=tiny(arch, attention="dot", enc_hidden=8,
                                              dec_hidden=16))
    model = build_model("chat", cfg.model, tok.vocab_size).eval()
    if arch == "vhred":
        model.kl_step += 7
    save_checkpoint(tmp_path / "ck", model=model, config=cfg, tokenizer=tok, card="# card\n")
    loaded = load_checkpoint(tmp_path / "ck", expect_kind="chat")
    assert loaded.meta["kind"] == "chat" and loaded.config.model == cfg.model
    assert type(loaded.model) is type(model)
    batch = {**pad_dialogue_batch(examples()), "z": torch.randn(3, 4)}
    want = model.forced_logits(model.start(batch)[0], batch["tgt"])
    got = loaded.model.forced_logits(loaded.model.start(batch)[0], batch["tgt"])
    assert torch.equal(want, got)
    if arch == "vhred":
        assert int(loaded.model.kl_step) == 7


def test_chat_presets_and_config_checks():
    for arch in ARCHS:
        cfg = load_config("chat", f"chat-dailydialog-{arch}")
        assert cfg.model.arch == arch and cfg.data.corpus == "dailydialog"
    assert load_config("chat", "chat-tiny").model.context_turns == 2
    with pytest.raises(ConfigError, match="model.arch"):
        load_config("chat", None, ("model.arch=transformer",))
    with pytest.raises(ConfigError, match="dot attention"):
        build_model("chat", tiny(attention="dot", enc_hidden=8, dec_hidden=12), VOCAB)


# --------------------------------------------------------------------------- synthetic task
KEYS = ("red", "blue", "green", "gold")
FILLERS = ("ok", "sure", "go on", "i see", "right then", "yes")


def key_dialogues(n: int, seed: int) -> list[Dialogue]:
    """u1 names a colour, u2 is a filler unrelated to it, u3 must repeat the colour:
    the reply to u2 depends on the utterance two turns back."""
    rng = random.Random(seed)
    return [Dialogue([f"my colour is {k}", rng.choice(FILLERS), f"you said {k}"])
            for k in (rng.choice(KEYS) for _ in range(n))]


def train_synthetic(arch: str, tok: WordTokenizer) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ChatModelConfig(arch=arch, emb_dim=16, enc_hidden=16, ctx_hidden=32, dec_hidden=32,
                          latent_dim=8, context_turns=2, max_utt_len=8, dropout=0.0,
                          kl_anneal_steps=100)
    model = build_model("chat", cfg, tok.vocab_size).train()
    ex = encode_windows(key_dialogues(400, 1), tok, model.context_turns, 8)
    data = DialogueData(ex, ex[:4], 32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(6):
        for batch in data.train_batches(epoch):
            res = model.loss(batch)
            opt.zero_grad()
            (res.loss_sum / res.tokens).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def synthetic() -> dict:
    tok = WordTokenizer.train([u for d in key_dialogues(400, 1) for u in d.turns])
    return {"tok": tok, **{arch: train_synthetic(arch, tok) for arch in ARCHS}}


def third_turn_accuracy(model: torch.nn.Module, tok: WordTokenizer) -> float:
    test = key_dialogues(100, 2)
    ex = [e for e in encode_windows(test, tok, model.context_turns, 8)
          if tok.decode(e.reply).startswith("you said")]
    assert len(ex) == 100
    batch = pad_dialogue_batch(ex)
    del batch["tgt"]
    out = decode(model, batch, 8, eos=EOS, banned=(PAD, BOS, UNK))
    return sum(o == e.reply for o, e in zip(out.tokens, ex, strict=False)) / len(ex)


def test_hred_uses_the_utterance_two_turns_back_and_seq2seq_cannot(synthetic):
    tok = synthetic["tok"]
    assert third_turn_accuracy(synthetic["hred"], tok) >= 0.95
    assert third_turn_accuracy(synthetic["vhred"], tok) >= 0.95
    assert third_turn_accuracy(synthetic["seq2seq"], tok) <= 0.5  # chance is 1/4


def test_vhred_z_gives_different_replies_where_hred_greedy_gives_one(synthetic):
    """The reply to "my colour is red" is any of six fillers: greedy HRED always says
    the same; greedy VHRED with a new z per row says different things."""
    tok = synthetic["tok"]
    batch = context_batch([tok.encode("my colour is red")], rows=16)
    torch.manual_seed(0)
    replies = {arch: {tuple(t) for t in decode(synthetic[arch], batch, 6, eos=EOS,
                                               banned=(PAD, BOS, UNK)).tokens}
               for arch in ("hred", "vhred")}
    assert len(replies["hred"]) == 1
    assert len(replies["vhred"]) >= 2
    kl = synthetic["vhred"].kl_per_reply(pad_dialogue_batch(
        encode_windows(key_dialogues(50, 3), tok, 2, 8)))
    assert float(kl.mean()) > 0.1  # the posterior has not collapsed


# --------------------------------------------------------------------------- real corpus
@pytest.mark.corpus
def test_dailydialog_split_sizes(corpora_dir: Path):
    """SOURCE.md: 11,118 / 1,000 / 1,000 dialogues (13,118 in all)."""
    from seqtool.data.corpora import import_corpus
    from seqtool.data.dialogue import corpus_dialogues

    import_corpus("dailydialog", corpora_dir / "dailydialog")
    sizes = {s: len(corpus_dialogues("dailydialog", s)) for s in ("train", "valid", "test")}
    assert sizes == {"train": 11118, "valid": 1000, "test": 1000}
    first = corpus_dialogues("dailydialog", "train")[0]
    assert first.turns[0].startswith("Say , Jim") and first.acts and first.emotions
