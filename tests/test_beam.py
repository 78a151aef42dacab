"""Beam search (seqtool/search.py) against the step protocol: invariants on
random tiny models and a hand-built model whose best output is known."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from seqtool.config import LMModelConfig, Seq2SeqModelConfig
from seqtool.data.parallel import pad_batch
from seqtool.data.tokenizer import BOS, EOS, PAD, UNK
from seqtool.decoding import decode
from seqtool.models import build_model
from seqtool.search import ban_repeated_ngrams, beam_search, length_limits, length_penalty

SRC_V, TGT_V = 20, 12


def tiny_seq2seq(seed: int, tgt_vocab: int = TGT_V, **kw):
    torch.manual_seed(seed)
    cfg = Seq2SeqModelConfig(**{"emb_dim": 8, "enc_hidden": 8, "dec_hidden": 16, **kw})
    model = build_model("translate", cfg, (SRC_V, tgt_vocab)).eval()
    # sharpen the random output layer so that hypotheses differ clearly
    model.out.weight.data *= 4
    return model


def random_batch(seed: int, n: int = 3):
    g = torch.Generator().manual_seed(seed)
    pairs = [(torch.randint(4, SRC_V, (int(torch.randint(1, 8, (1,), generator=g)),),
                            generator=g).tolist(), [4]) for _ in range(n)]
    return pad_batch(pairs)


class TableModel:
    """A hand-built bigram model on the protocol: log P(next | last token) is a
    fixed table. No tensors besides the last token, no isinstance anywhere."""

    kind = "fake"

    def __init__(self, probs: dict[int, dict[int, float]], vocab: int = 6) -> None:
        self.table = torch.full((vocab, vocab), float("-inf"))
        for prev, row in probs.items():
            for tok, p in row.items():
                self.table[prev, tok] = math.log(p)

    def start(self, batch):
        rows = batch["src"].shape[1]
        return torch.full((rows,), BOS), torch.full((rows,), BOS)

    def step(self, tokens, state):
        return self.table[tokens], tokens

    def reorder(self, state, index):
        return state.index_select(0, index)


# tokens: 4 = a, 5 = b. Greedy takes "a" (0.5) and then "a" again and again
# (0.36 each); the best output is "b" EOS (0.4 * 0.9 = 0.36), then "a" EOS
# (0.5 * 0.34 = 0.17), "a b" EOS (0.5 * 0.3 * 0.9 = 0.135), "" (EOS at once, 0.1).
TRAP = {BOS: {4: 0.5, 5: 0.4, EOS: 0.1},
        4: {4: 0.36, 5: 0.30, EOS: 0.34},
        5: {EOS: 0.9, 4: 0.05, 5: 0.05}}


def one_source(rows: int = 1):
    return {"src": torch.full((1, rows), 4)}


def test_hand_built_model_greedy_is_wrong_and_beam_finds_the_best():
    model = TableModel(TRAP)
    greedy = decode(model, one_source(), max_len=5, eos=EOS)
    assert greedy.tokens == [[4, 4, 4, 4, 4]]
    assert greedy.scores[0] == pytest.approx(math.log(0.5 * 0.36 ** 4), abs=1e-6)
    beam = beam_search(model, one_source(), beam_size=2, n_best=2, max_len=5)[0]
    assert beam[0].tokens == [5]
    assert beam[0].log_prob == pytest.approx(math.log(0.4 * 0.9), abs=1e-6)
    assert beam[0].score > greedy.scores[0]
    # K = 2: at step 2 "a" EOS ranks third (after "b" EOS and "a a"), beyond the
    # beam, so the second-best output is missed: a search error, as it should be
    assert beam[1].tokens == [4, 5]
    assert beam[1].log_prob == pytest.approx(math.log(0.5 * 0.3 * 0.9), abs=1e-6)
    wider = beam_search(model, one_source(), beam_size=3, n_best=3, max_len=5)[0]
    assert [h.tokens for h in wider] == [[5], [4], [4, 5]]
    assert [h.log_prob for h in wider] == pytest.approx(
        [math.log(p) for p in (0.36, 0.17, 0.135)], abs=1e-6)
    # beam 1 falls into the trap exactly as greedy does
    one = beam_search(model, one_source(), beam_size=1, max_len=5)[0][0]
    assert one.tokens == greedy.tokens[0]
    assert one.log_prob == pytest.approx(greedy.scores[0], abs=1e-6)


def test_hand_built_model_batch_rows_are_independent():
    model = TableModel(TRAP)
    out = beam_search(model, one_source(4), beam_size=3, n_best=3, max_len=6)
    assert len(out) == 4
    for hyps in out:
        assert [h.tokens for h in hyps] == [[5], [4], [4, 5]]


CONFIGS = {
    "bahdanau": {},
    "lstm-general-2layer": {"cell": "lstm", "attention": "general", "enc_layers": 2,
                            "dec_layers": 2},
    "dot-nofeed-reverse": {"attention": "dot", "input_feeding": False,
                           "reverse_source": True},
    "none-peeky": {"attention": "none", "peeky": True, "bidirectional": False,
                   "enc_hidden": 16},
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_beam_one_equals_greedy(name, seed):
    model = tiny_seq2seq(seed, **CONFIGS[name])
    batch = random_batch(seed, 4)
    greedy = decode(model, batch, max_len=8, eos=EOS)
    beam = beam_search(model, batch, beam_size=1, max_len=8)
    for row, hyps in enumerate(beam):
        assert hyps[0].tokens == greedy.tokens[row]
        assert hyps[0].log_prob == pytest.approx(greedy.scores[row], abs=1e-4)


def test_beam_one_equals_greedy_for_the_language_model():
    """The same search decodes the LM: it only speaks the protocol."""
    torch.manual_seed(0)
    lm = build_model("lm", LMModelConfig(emb_dim=16, hidden=16, layers=1, dropout=0.0),
                     30).eval()
    batch = {"prompt": torch.randint(4, 30, (3, 2))}
    greedy = decode(lm, batch, max_len=6, eos=EOS)
    beam = beam_search(lm, batch, beam_size=1, max_len=6)
    assert [h[0].tokens for h in beam] == greedy.tokens
    assert [h[0].log_prob for h in beam] == pytest.approx(greedy.scores, abs=1e-4)


def all_outputs(tokens: tuple[int, ...], max_len: int) -> list[tuple[list[int], bool]]:
    """Every output over `tokens`: (ids, ended with EOS), up to max_len steps."""
    out = []
    for n in range(max_len + 1):
        for seq in itertools.product(tokens, repeat=n):
            out.append((list(seq), n < max_len))
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_wide_beam_is_exact_search_and_never_below_greedy(name):
    """With room for every prefix the beam is exhaustive: its n-best equal brute
    force over all outputs, and its best is >= greedy."""
    banned = (PAD, UNK, BOS)  # outputs over {4, 5, EOS}: at most 2^4 live prefixes
    for seed in range(2):
        model = tiny_seq2seq(seed, tgt_vocab=6, **CONFIGS[name])
        batch = random_batch(10 + seed, 3)
        greedy = decode(model, batch, max_len=4, eos=EOS, banned=banned)
        beam = beam_search(model, batch, beam_size=16, n_best=4, max_len=4, banned=banned)
        for row, hyps in enumerate(beam):
            brute = sorted(((rescore(model, batch, row, seq, ended), seq)
                            for seq, ended in all_outputs((4, 5), 4)), reverse=True)[:4]
            assert [h.tokens for h in hyps] == [seq for _, seq in brute]
            assert [h.log_prob for h in hyps] == pytest.approx([sc for sc, _ in brute],
                                                               abs=1e-4)
            assert hyps[0].log_prob >= greedy.scores[row] - 1e-4


def test_narrow_beam_can_score_below_greedy():
    """Not an invariant: a narrow beam may prune the greedy path (here at step 2
    two extensions of "b" outrank "a c"), as in every beam search that keeps K
    prefixes (JoeyNMT, fairseq, Hugging Face). A wider beam recovers it."""
    # a = 4, b = 5, c = 6, d = 7, e = 8
    model = TableModel({BOS: {4: 0.5, 5: 0.45, EOS: 0.05}, 4: {6: 0.4, EOS: 0.35, 4: 0.25},
                        5: {7: 0.5, 8: 0.5}, 6: {EOS: 1.0}, 7: {EOS: 0.2, 7: 0.4, 8: 0.4},
                        8: {EOS: 0.2, 7: 0.4, 8: 0.4}}, vocab=9)
    greedy = decode(model, one_source(), max_len=4, eos=EOS)
    assert greedy.tokens == [[4, 6]]
    assert greedy.scores[0] == pytest.approx(math.log(0.2))
    narrow = beam_search(model, one_source(), beam_size=2, max_len=4)[0][0]
    assert narrow.log_prob < greedy.scores[0] - 1.0
    wide = beam_search(model, one_source(), beam_size=3, max_len=4)[0][0]
    assert wide.tokens == [4, 6] and wide.log_prob == pytest.approx(math.log(0.2))


@torch.no_grad()
def rescore(model, batch, row: int, tokens: list[int], ended: bool) -> float:
    """log P(tokens [EOS]) of one source row, one forced step at a time."""
    state, tok = model.start({k: v[:, row: row + 1] for k, v in batch.items()
                              if k != "src_len" and k != "tgt_len"})
    total = 0.0
    for t in tokens + ([EOS] if ended else []):
        lp, state = model.step(tok, state)
        total += float(lp[0, t])
        tok = torch.tensor([t])
    return total


def test_n_best_sorted_distinct_and_scores_are_model_log_probs():
    model = tiny_seq2seq(3)
    batch = random_batch(3, 3)
    out = beam_search(model, batch, beam_size=6, n_best=4, max_len=7)
    for row, hyps in enumerate(out):
        assert len(hyps) == 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 4
        for h in hyps:
            ended = len(h.tokens) < 7
            assert h.log_prob == pytest.approx(rescore(model, batch, row, h.tokens, ended),
                                               abs=1e-4)
            assert h.score == h.log_prob  # no length penalty
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, batch, beam_size=2, n_best=3)


def test_batch_equals_one_sentence_at_a_time():
    """Padding, the B x K flattening and dropping finished sentences change nothing."""
    model = tiny_seq2seq(4, attention="general")
    batch = random_batch(4, 5)
    limits = length_limits(batch["src_len"], 1.0, 2, 100)
    together = beam_search(model, batch, beam_size=3, n_best=2, max_len=limits,
                           attention=model.attention_weights)
    for row in range(5):
        n = int(batch["src_len"][row])
        alone_batch = {"src": batch["src"][:n, row: row + 1]}
        alone = beam_search(model, alone_batch, beam_size=3, n_best=2, max_len=limits[row],
                            attention=model.attention_weights)[0]
        assert [h.tokens for h in together[row]] == [h.tokens for h in alone]
        assert [h.score for h in together[row]] == pytest.approx([h.score for h in alone],
                                                                 abs=1e-4)
        for a, b in zip(together[row], alone, strict=False):
            assert torch.allclose(a.attention[:, :n], b.attention, atol=1e-5)
            assert float(a.attention[:, n:].abs().sum()) == 0.0


def test_reorder_within_sources_skips_the_memory_and_changes_nothing(monkeypatch):
    """Beam search keeps a sentence's memory as it is while no sentence leaves the
    batch (Seq2Seq.reorder_within_sources); the results equal full reorders."""
    from seqtool.models.seq2seq import Seq2Seq

    model = tiny_seq2seq(6)
    batch = random_batch(6, 4)
    limits = length_limits(batch["src_len"], 1.5, 3, 100)
    calls = {"within": 0}
    plain = Seq2Seq.reorder_within_sources

    def counting(self, state, index):
        calls["within"] += 1
        out = plain(self, state, index)
        shared = [k for k in ("memory", "mem_b", "keys") if k in state]  # the step's layout
        assert len(shared) == 2 and all(out[k] is state[k] for k in shared)
        return out

    monkeypatch.setattr(Seq2Seq, "reorder_within_sources", counting)
    fast = beam_search(model, batch, beam_size=4, n_best=2, max_len=limits)
    assert calls["within"] > 0
    monkeypatch.setattr(Seq2Seq, "reorder_within_sources", Seq2Seq.reorder)  # always copy
    full = beam_search(model, batch, beam_size=4, n_best=2, max_len=limits)
    for a, b in zip(fast, full, strict=False):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == [h.score for h in b]


def test_length_limits_and_attention_rows():
    model = tiny_seq2seq(5)
    batch = random_batch(5, 4)
    limits = length_limits(batch["src_len"], 0.5, 1, 3)
    assert limits == [max(1, min(3, int(0.5 * n + 1))) for n in batch["src_len"].tolist()]
    out = beam_search(model, batch, beam_size=3, n_best=3, max_len=limits,
                      attention=model.attention_weights)
    for hyps, limit, n in zip(out, limits, batch["src_len"].tolist(), strict=False):
        for h in hyps:
            assert len(h.tokens) <= limit
            steps = len(h.tokens) + (len(h.tokens) < limit)  # + the EOS step
            assert h.attention.shape == (steps, batch["src"].shape[0])
            assert torch.allclose(h.attention.sum(1), torch.ones(steps), atol=1e-5)
            assert float(h.attention[:, n:].abs().sum()) == 0.0


def test_length_penalty_ranks_by_normalised_score():
    model = TableModel(TRAP)
    assert length_penalty(3, 0.0) == length_penalty(3, -1.0) == 1.0
    assert length_penalty(1, 1.0) == 1.0 and length_penalty(7, 1.0) == 2.0
    out = beam_search(model, one_source(), beam_size=3, n_best=3, max_len=4, alpha=2.0)[0]
    for h in out:
        steps = len(h.tokens) + (len(h.tokens) < 4)
        assert h.score == pytest.approx(h.log_prob / length_penalty(steps, 2.0))
    assert [h.score for h in out] == sorted((h.score for h in out), reverse=True)
    # the penalty lifts "a b" EOS (3 steps) above "a" EOS (2 steps)
    plain = beam_search(model, one_source(), beam_size=3, n_best=3, max_len=4)[0]
    assert [h.tokens for h in plain] == [[5], [4], [4, 5]]
    assert [h.tokens for h in out] == [[5], [4, 5], [4]]


def test_no_repeat_ngram():
    lp = torch.zeros(2, 6)
    hist = torch.tensor([[4, 5, 4, 5], [4, 4, 5, 5]])
    banned = ~torch.isfinite(ban_repeated_ngrams(lp, hist, 2))
    assert banned[0].nonzero().flatten().tolist() == [4]  # "5 4" occurred
    assert banned[1].nonzero().flatten().tolist() == [5]  # "5 5" occurred
    banned = ~torch.isfinite(ban_repeated_ngrams(lp, hist, 1))
    assert banned[0].nonzero().flatten().tolist() == [4, 5]
    assert torch.isfinite(ban_repeated_ngrams(lp, hist[:, :1], 2)).all()
    # in search: an untrained model repeats itself; with the ban it cannot
    model = tiny_seq2seq(1, attention="none", bidirectional=False, enc_hidden=16)
    batch = random_batch(1, 3)
    for n in (1, 2, 3):
        for hyps in beam_search(model, batch, beam_size=3, n_best=3, max_len=10,
                                no_repeat_ngram=n):
            for h in hyps:
                grams = [tuple(h.tokens[i: i + n]) for i in range(len(h.tokens) - n + 1)]
                assert len(grams) == len(set(grams)), (n, h.tokens)


class Counting(TableModel):
    steps = 0

    def step(self, tokens, state):
        self.steps += 1
        return super().step(tokens, state)


def test_early_stop_ends_sooner_with_a_length_penalty_and_exact_stop_is_exact():
    """alpha > 0: "early" ends once the finished hypothesis leads the alive beams at the
    current length; "exact" goes on until no continuation could overtake it. Here both
    find "b" EOS, early in 2 model steps, exact in more. Without a penalty they agree."""
    early, exact = Counting(TRAP), Counting(TRAP)
    a = beam_search(early, one_source(), beam_size=2, max_len=20, alpha=1.0)[0]
    b = beam_search(exact, one_source(), beam_size=2, max_len=20, alpha=1.0, stop="exact")[0]
    assert a[0].tokens == b[0].tokens == [5]
    assert early.steps == 2 < exact.steps
    plain_early, plain_exact = Counting(TRAP), Counting(TRAP)
    beam_search(plain_early, one_source(), beam_size=2, max_len=20)
    beam_search(plain_exact, one_source(), beam_size=2, max_len=20, stop="exact")
    assert plain_early.steps == plain_exact.steps
    with pytest.raises(ValueError, match="stop"):
        beam_search(early, one_source(), stop="sometimes")

