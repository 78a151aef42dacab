"""Toy tasks of "Deep Learning from Scratch 2" (ch. 7-8) as fast end-to-end
tests: generate pairs, train tiny models with the seqtool Trainer, decode."""

from __future__ import annotations

import datetime
import re
import time

import pytest
import torch

from seqtool.config import Seq2SeqModelConfig, TrainConfig
from seqtool.data.parallel import ParallelData, encode_pairs, read_parallel, source_batches
from seqtool.data.tokenizer import EOS, WordTokenizer
from seqtool.data.toy import addition_pairs, chars, date_pairs, unchars, write_pairs
from seqtool.decoding import decode
from seqtool.models import build_model
from seqtool.search import beam_search, length_limits
from seqtool.training import Trainer


def test_date_pairs_are_deterministic_varied_and_correct():
    pairs = date_pairs(400, seed=7)
    assert pairs == date_pairs(400, seed=7) and pairs != date_pairs(400, seed=8)
    shapes = {re.sub(r"[a-z]+", "w", re.sub(r"\d+", "9", s.lower())) for s, _ in pairs}
    assert shapes == {"w 9, 9", "9/9/9", "w, w 9, 9", "9 w 9", "w, 9 w 9"}
    assert any(s.isupper() for s, _ in pairs) and any(s.islower() for s, _ in pairs)
    for src, iso in pairs:
        d = datetime.date.fromisoformat(iso)
        assert 1970 <= d.year <= 2069
        nums = [int(n) for n in re.findall(r"\d+", src)]
        assert d.day in nums and (d.year in nums or d.year % 100 in nums)


def test_addition_pairs_and_reversal():
    pairs = addition_pairs(200, seed=1, digits=3)
    for src, tgt in pairs:
        a, b = (int(x) for x in src.split("+"))
        assert 0 <= a < 1000 and 0 <= b < 1000 and int(tgt) == a + b
    rev = addition_pairs(200, seed=1, digits=3, reverse=True)
    assert [(s[::-1], t) for s, t in rev] == pairs


def test_chars_round_trip_and_files(tmp_path):
    assert chars("may 1, 99") == "m a y <sp> 1 , <sp> 9 9"
    assert unchars(chars("may 1, 99")) == "may 1, 99"
    pairs = date_pairs(20, seed=0)
    write_pairs(pairs, tmp_path / "a.src", tmp_path / "a.tgt")
    src, tgt, skipped = read_parallel(tmp_path / "a.src", tmp_path / "a.tgt")
    assert skipped == 0
    assert [(unchars(s), unchars(t)) for s, t in zip(src, tgt, strict=True)] == pairs


def train_toy(tmp_path, train: list[tuple[str, str]], valid: list[tuple[str, str]],
              steps: int, lr: float = 1e-2, **model_kw):
    """Character tokenizers, ParallelData and the Trainer; returns model and tokenizers."""
    src_tok = WordTokenizer.train(chars(s) for s, _ in train)
    tgt_tok = WordTokenizer.train(chars(t) for _, t in train)

    def enc(pairs):
        return encode_pairs([chars(s) for s, _ in pairs], [chars(t) for _, t in pairs],
                            src_tok, tgt_tok)

    data = ParallelData(enc(train), enc(valid), batch_size=64, seed=1)
    torch.manual_seed(0)
    cfg = Seq2SeqModelConfig(**model_kw)
    model = build_model("translate", cfg, (src_tok.vocab_size, tgt_tok.vocab_size))
    tc = TrainConfig(epochs=100, max_steps=steps, batch_size=64, optimizer="adam", lr=lr,
                     clip=5.0, schedule="constant", patience=0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = Trainer(model, data, tc, tmp_path, lambda name, training: None).run()
    finally:
        torch.set_num_threads(threads)
    assert summary["steps"] == steps
    return model.eval(), src_tok, tgt_tok


def exact_match(model, src_tok, tgt_tok, pairs, beam_size: int = 1):
    """Share of pairs translated exactly, and the hypotheses' log-probabilities."""
    sources = [src_tok.encode(chars(s)) for s, _ in pairs]
    hits, scores = 0, [0.0] * len(pairs)
    for idx, batch in source_batches(sources, 256):
        limits = length_limits(batch["src_len"], 1.0, 5, 20)
        for i, hyps in zip(idx, beam_search(model, batch, beam_size=beam_size,
                                            max_len=limits), strict=False):
            hits += unchars(tgt_tok.decode(hyps[0].tokens)) == pairs[i][1]
            scores[i] = hyps[0].log_prob
    return hits / len(pairs), scores


def test_date_task_reaches_99_percent_exact_match(tmp_path):
    """A 56k-parameter Bahdanau model (bi-GRU 2 x 32, GRU 64, input feeding)."""
    train = date_pairs(6000, seed=1)
    seen = {s for s, _ in train}
    test = [p for p in date_pairs(600, seed=2) if p[0] not in seen][:500]
    t0 = time.perf_counter()
    model, src_tok, tgt_tok = train_toy(tmp_path, train, test[:100], steps=300, emb_dim=16,
                                        enc_hidden=32, dec_hidden=64)
    acc, greedy_scores = exact_match(model, src_tok, tgt_tok, test)
    assert acc >= 0.99, f"exact match {acc:.3f} after {time.perf_counter() - t0:.0f} s"
    acc3, beam_scores = exact_match(model, src_tok, tgt_tok, test, beam_size=3)
    assert acc3 >= 0.99
    # a trained, confident model: the beam's best is never below greedy here
    assert all(b >= g - 1e-4 for b, g in zip(beam_scores, greedy_scores, strict=False))
    # decoding.decode (greedy, one length limit) gives the same outputs as beam 1
    order, batch = next(source_batches([src_tok.encode(chars(s)) for s, _ in test[:16]], 16))
    greedy = decode(model, batch, max_len=11, eos=EOS)
    beam1 = beam_search(model, batch, beam_size=1, max_len=11)
    assert greedy.tokens == [h[0].tokens for h in beam1]


@pytest.mark.slow
def test_addition_reversed_peeky_beats_the_plain_model(tmp_path):
    """Chapter 7's experiment at a tiny budget (no attention, as in the book):
    reading the source backwards and giving the decoder the encoder's state at
    every step learns addition much faster than the plain seq2seq."""
    train = addition_pairs(20000, seed=1, digits=2)
    test = addition_pairs(500, seed=2, digits=2)
    common = {"cell": "lstm", "attention": "none", "bidirectional": False, "emb_dim": 16,
              "enc_hidden": 64, "dec_hidden": 64}
    acc = {}
    for name, kw in {"plain": {}, "reversed+peeky": {"reverse_source": True,
                                                      "peeky": True}}.items():
        model, src_tok, tgt_tok = train_toy(tmp_path / name, train, test[:100], steps=800,
                                            **common, **kw)
        acc[name] = exact_match(model, src_tok, tgt_tok, test)[0]
    assert acc["reversed+peeky"] >= 0.6 and acc["reversed+peeky"] >= acc["plain"] + 0.3, acc
