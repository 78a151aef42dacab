"""Scores: sacrebleu BLEU and chrF (with their signatures, so a number can be
reproduced), perplexity, and distinct-n for generated text.

sacrebleu is imported inside the functions that use it, so importing this
module stays cheap. The signature (e.g. `nrefs:1|case:mixed|eff:no|tok:13a|
smooth:exp|version:2.6.0`) names everything that changes a BLEU score: always
report it next to the number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from seqtool.errors import ConfigError

# sacrebleu tokenizers by target language where 13a (made for English-like text
# with spaces between words) would score whole sentences as one word
_TOKENIZE_BY_LANG = {"zh": "zh", "ja": "char", "ko": "char", "th": "char"}
BLEU_TOKENIZERS = ("13a", "intl", "char", "none", "zh", "ja-mecab", "ko-mecab", "flores101",
                   "flores200")


def default_bleu_tokenize(lang: str | None) -> str:
    """The sacrebleu tokenizer to use for a target language ("13a" unless listed).

    Japanese gets "char" (character n-grams): the usual "ja-mecab" needs the
    mecab-python3 and ipadic packages, and "char" needs nothing and does not
    depend on how a system segments words. For text that is already segmented
    the same way on both sides (small_parallel_enja), "none" is also fair.
    """
    return _TOKENIZE_BY_LANG.get((lang or "").lower(), "13a")


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):  # callers check user files and name them
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a",
         lowercase: bool = False, max_order: int = 4) -> dict[str, Any]:
    """Corpus BLEU (Papineni et al. 2002) as sacrebleu computes it, one reference per line.

    Returns score (0-100), signature, the 1-4-gram precisions, brevity penalty
    and the hypothesis / reference lengths in tokens. `max_order` = n gives
    BLEU-n (dialogue papers report BLEU-1/2); sacrebleu's signature does not
    name the order, so state it beside the score.
    """
    from sacrebleu.metrics import BLEU

    _check(hypotheses, references)
    try:
        # force: tokenized input (DailyDialog, KyTea Japanese) is scored as it is, without
        # sacrebleu's multi-line "forgot to detokenize" notice on stderr
        metric = BLEU(tokenize=tokenize, lowercase=lowercase, max_ngram_order=max_order,
                      force=True)
    except (ImportError, RuntimeError) as exc:  # ja-mecab / ko-mecab without their packages
        raise ConfigError(f"sacrebleu tokenizer {tokenize!r} is not usable here: "
                          f"{' '.join(str(exc).split())[:120]}",
                          "install its extra (pip install 'sacrebleu[ja]' or '[ko]'), or use "
                          "--bleu-tokenize char") from None
    res = metric.corpus_score(list(hypotheses), [list(references)])
    return {"score": float(res.score), "signature": str(metric.get_signature()),
            "precisions": [float(p) for p in res.precisions], "bp": float(res.bp),
            "sys_len": int(res.sys_len), "ref_len": int(res.ref_len)}


def chrf(hypotheses: Sequence[str], references: Sequence[str],
         lowercase: bool = False) -> dict[str, Any]:
    """Corpus chrF (Popović 2015; character 6-grams, beta 2) with its signature."""
    from sacrebleu.metrics import CHRF

    _check(hypotheses, references)
    metric = CHRF(lowercase=lowercase)
    res = metric.corpus_score(list(hypotheses), [list(references)])
    return {"score": float(res.score), "signature": str(metric.get_signature())}


def perplexity(nll_sum: float, tokens: int) -> float:
    """exp(mean negative log-likelihood per token); the exponent is capped at 50."""
    if tokens <= 0:
        raise ValueError("perplexity of zero tokens")
    return math.exp(min(nll_sum / tokens, 50.0))


def distinct_n(sentences: Iterable[str | Sequence[str]], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / all n-grams over all sentences.

    Sentences are strings (split on whitespace) or token lists; 0.0 when there
    is no n-gram at all.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for sent in sentences:
        tokens = sent.split() if isinstance(sent, str) else list(sent)
        grams = [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0
