"""seqtool.metrics: sacrebleu BLEU and chrF with signatures, perplexity, distinct-n."""

from __future__ import annotations

import math

import pytest

from seqtool.errors import ConfigError
from seqtool.metrics import bleu, chrf, default_bleu_tokenize, distinct_n, perplexity

HYPS = ["the cat sat on the mat .", "a dog ran to the red ball ."]


def test_bleu_of_identical_text_is_100_with_signature():
    res = bleu(HYPS, HYPS)
    assert res["score"] == pytest.approx(100.0)
    assert res["precisions"] == pytest.approx([100.0] * 4) and res["bp"] == 1.0
    sig = res["signature"]
    for part in ("nrefs:1", "case:mixed", "tok:13a", "smooth:exp", "version:"):
        assert part in sig, sig
    assert res["sys_len"] == res["ref_len"] == 15  # 7 + 8 tokens (13a)


def test_bleu_options_show_in_the_signature_and_the_score():
    upper = [h.upper() for h in HYPS]
    assert bleu(upper, HYPS)["score"] < 10
    lc = bleu(upper, HYPS, lowercase=True)
    assert lc["score"] == pytest.approx(100.0) and "case:lc" in lc["signature"]
    assert "tok:char" in bleu(["猫がいる"], ["猫がいる"], tokenize="char")["signature"]
    assert "tok:none" in bleu(HYPS, HYPS, tokenize="none")["signature"]


def test_bleu_of_a_partial_match():
    res = bleu(["the cat sat on a mat ."], ["the cat sat on the mat ."])
    assert 0 < res["score"] < 100
    assert res["precisions"][0] == pytest.approx(100 * 6 / 7)


def test_chrf():
    same = chrf(HYPS, HYPS)
    assert same["score"] == pytest.approx(100.0)
    assert "nc:6" in same["signature"] and "nw:0" in same["signature"]
    near = chrf(["the cat sat on a mat ."], ["the cat sat on the mat ."])["score"]
    far = chrf(["xyz qqq"], ["the cat sat on the mat ."])["score"]
    assert 0 <= far < near < 100


def test_counts_must_match():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu(HYPS, HYPS[:1])
    with pytest.raises(ValueError):
        chrf(HYPS[:1], HYPS)


def test_unusable_tokenizer_is_a_config_error():
    try:
        import MeCab  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError) as exc:
            bleu(HYPS, HYPS, tokenize="ja-mecab")
        assert "ja-mecab" in exc.value.message and "char" in exc.value.hint
    else:
        pytest.skip("mecab is installed here")


def test_default_tokenizer_by_language():
    assert default_bleu_tokenize("en") == "13a"
    assert default_bleu_tokenize("") == "13a" and default_bleu_tokenize(None) == "13a"
    assert default_bleu_tokenize("ja") == "char"
    assert default_bleu_tokenize("zh") == "zh"


def test_perplexity():
    assert perplexity(0.0, 5) == 1.0
    assert perplexity(10 * math.log(4), 10) == pytest.approx(4.0)
    assert perplexity(1e9, 1) == pytest.approx(math.exp(50))
    with pytest.raises(ValueError):
        perplexity(1.0, 0)


def test_distinct_n_by_hand():
    sents = ["i do not know", "i do not care", "i i i"]
    # unigrams: i do not know care -> 5 distinct of 4 + 4 + 3 = 11
    assert distinct_n(sents, 1) == pytest.approx(5 / 11)
    # bigrams: (i do) (do not) (not know) (not care) (i i) -> 5 distinct of 3 + 3 + 2 = 8
    assert distinct_n(sents, 2) == pytest.approx(5 / 8)
    assert distinct_n([["a", "b"], ["a", "b"]], 2) == 0.5  # token lists work too
    assert distinct_n(["one"], 2) == 0.0 and distinct_n([], 1) == 0.0
    with pytest.raises(ValueError):
        distinct_n(sents, 0)
