"""Scores: sacrebleu BLEU and chrF (with their signatures, so a number can be
reproduced) of lines against references, the loss and perplexity of a model
over batches (evaluate_loss: validation, evaluation, the lab), distinct-n for generated
text, and the word-vector benchmarks (WordSim-353 correlation, Google analogies).

sacrebleu and torch are imported inside the functions that use them, so
importing this module stays cheap. The signature (e.g. `nrefs:1|case:mixed|eff:no|tok:13a|
smooth:exp|version:2.6.0`) names everything that changes a BLEU score: always
report it next to the number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqtool.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

    from seqtool.data.vectors import WordVectors

# sacrebleu tokenizers by target language where 13a (made for English-like text
# with spaces between words) would score whole sentences as one word
_TOKENIZE_BY_LANG = {"zh": "zh", "ja": "char", "ko": "char", "th": "char"}


def evaluate_loss(model: Any, batches: Iterable[dict[str, Any]], device: Any,
                  precision: str = "fp32") -> dict[str, float]:
    """Mean NLL per predicted token over `batches` (the module call, carry passed
    along), its perplexity, the token count and the sums of the model's extra terms."""
    import torch

    from seqtool.runtime import autocast, to_device

    was_training = model.training
    model.eval()
    total, tokens, carry = 0.0, 0, None
    extras: dict[str, float] = {}
    with torch.no_grad():
        for batch in batches:
            with autocast(device, precision):
                res = model(to_device(batch, device), carry)  # a LossResult
            total += float(res.loss_sum)
            tokens += res.tokens
            carry = res.carry
            for k, v in res.extra.items():
                extras[k] = extras.get(k, 0.0) + v
    model.train(was_training)
    nll = total / max(tokens, 1)
    return {"loss": nll, "ppl": math.exp(min(nll, 50.0)), "tokens": tokens, **extras}


def default_bleu_tokenize(lang: str | None) -> str:
    """The sacrebleu tokenizer to use for a target language ("13a" unless listed).

    Japanese gets "char" (character n-grams): the usual "ja-mecab" needs the
    mecab-python3 and ipadic packages, and "char" needs nothing and does not
    depend on how a system segments words. For text that is already segmented
    the same way on both sides (small_parallel_enja), "none" is also fair.
    """
    return _TOKENIZE_BY_LANG.get((lang or "").lower(), "13a")


def bleu_tokenize_for(override: str | None, configured: str, lang: str | None) -> str:
    """--bleu-tokenize, else the model's data.bleu_tokenize, else by target language."""
    return override or configured or default_bleu_tokenize(lang)


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


def distinct_n(sentences: Iterable[str | Sequence[Any]], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / all n-grams over all sentences.

    Sentences are strings (split on whitespace) or token lists; 0.0 when there
    is no n-gram at all.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    seen: set[tuple[Any, ...]] = set()
    total = 0
    for sent in sentences:
        tokens = sent.split() if isinstance(sent, str) else list(sent)
        grams = [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def score_lines(hypotheses: Sequence[str], references: Sequence[str], tokenize: str,
                lowercase: bool) -> dict[str, Any]:
    """BLEU and chrF with their sacrebleu signatures."""
    b = bleu(hypotheses, references, tokenize, lowercase)
    c = chrf(hypotheses, references, lowercase)
    return {"bleu": b["score"], "chrf": c["score"], "bleu_signature": b["signature"],
            "chrf_signature": c["signature"], "sentences": len(hypotheses),
            "bleu_precisions": b["precisions"], "brevity_penalty": b["bp"]}


def score_against(hypotheses: Sequence[str], reference: Path, tokenize: str,
                  lowercase: bool) -> dict[str, Any]:
    """Score translations against a reference file with one line per translation."""
    from seqtool.data.text import read_lines

    refs = read_lines(reference, "reference file")
    if len(refs) != len(hypotheses):
        raise DataError(f"the reference {reference} has {len(refs)} lines, but "
                        f"{len(hypotheses)} sentences were translated",
                        "give the reference translation of the same input, one line per line")
    return {**score_lines(hypotheses, refs, tokenize, lowercase), "reference": str(reference)}


# --------------------------------------------------------------------------- word vectors
def _case_folded(vecs: WordVectors, restrict: int) -> tuple[dict[str, int], np.ndarray]:
    """As gensim's evaluations: UPPER(word) -> row of its first (most frequent) spelling
    among the first `restrict` words, and each of those rows' canonical row."""
    import numpy as np

    rows: dict[str, int] = {}
    words = vecs.words[:restrict] if restrict > 0 else vecs.words
    for i, w in enumerate(words):
        rows.setdefault(w.upper(), i)
    canon = np.array([rows[w.upper()] for w in words], dtype=np.int64)
    return rows, canon


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata)."""
    import numpy as np

    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def word_pair_correlation(vecs: WordVectors, path: str | Path, restrict: int = 300000
                          ) -> dict[str, float | int]:
    """Spearman (and Pearson) correlation between human similarity scores and cosine
    similarity, over the pairs whose words are both known (case-insensitive), as
    gensim's evaluate_word_pairs. File: `word<TAB>word<TAB>score` lines, # comments."""
    import numpy as np

    from seqtool.data.text import read_lines

    rows, _ = _case_folded(vecs, restrict)
    gold, model, oov = [], [], 0
    for n, line in enumerate(read_lines(path, "word-pair file"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            a, b, score = parts[0].strip().upper(), parts[1].strip().upper(), float(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(f"{path}: line {n} is not 'word TAB word TAB score'",
                            "WordSim-353 format: two words and a number per line") from None
        if a not in rows or b not in rows:
            oov += 1
            continue
        gold.append(score)
        model.append(float(vecs.unit[rows[a]] @ vecs.unit[rows[b]]))
    if len(gold) < 2:
        raise DataError(f"fewer than two pairs of {path} have both words in the vocabulary",
                        "train on more text or lower --min-count")
    g, m = np.array(gold), np.array(model)
    return {"spearman": _pearson(_ranks(g), _ranks(m)), "pearson": _pearson(g, m),
            "pairs": len(gold), "oov_pairs": oov, "oov_ratio": oov / (oov + len(gold))}


def read_analogies(path: str | Path) -> list[tuple[str, list[tuple[int, list[str]]]]]:
    """Sections (': name' lines) of 4-word questions, with their line numbers."""
    from seqtool.data.text import read_lines

    sections: list[tuple[str, list[tuple[int, list[str]]]]] = []
    for n, line in enumerate(read_lines(path, "analogy file"), start=1):
        if not line.strip():
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.split()
        if len(words) != 4:
            raise DataError(f"{path}: line {n} has {len(words)} words, expected 4",
                            "Google analogy format: 'a b c d' lines under ': section' lines")
        if not sections:
            raise DataError(f"{path}: line {n} comes before the first ': section' line",
                            "start the file with a section line, e.g. ': capital-world'")
        sections[-1][1].append((n, [w.upper() for w in words]))
    return sections


def analogy_accuracy(vecs: WordVectors, path: str | Path, restrict: int = 30000,
                     chunk: int = 512) -> dict[str, Any]:
    """Accuracy on 'a b c d' questions (d = b - a + c, 3CosAdd), as gensim's
    evaluate_word_analogies: case-insensitive; only the first `restrict` words count,
    as answers and as question words; questions with other words are skipped; a, b
    and c (any spelling) are never the answer. Per section and overall; sections
    named gram* are syntactic, the others semantic."""
    import numpy as np

    rows, canon = _case_folded(vecs, restrict)
    unit = vecs.unit[: len(canon)]  # (R, D)
    out_sections: list[dict[str, Any]] = []
    qs: list[list[int]] = []
    owner: list[int] = []
    skipped = 0
    for s, (name, questions) in enumerate(read_analogies(path)):
        out_sections.append({"section": name, "correct": 0, "total": 0})
        for _, words in questions:
            if all(w in rows for w in words):
                qs.append([rows[w] for w in words])
                owner.append(s)
            else:
                skipped += 1
    q = np.array(qs, dtype=np.int64).reshape(-1, 4)  # (M, 4) rows of a, b, c, d
    right = np.zeros(len(q), dtype=bool)
    for lo in range(0, len(q), chunk):
        a, b, c, d = q[lo: lo + chunk].T
        query = unit[b] - unit[a] + unit[c]  # (m, D); norm does not change the argmax
        sims = query @ unit.T  # (m, R)
        for x in (a, b, c):
            sims[canon[None, :] == x[:, None]] = -np.inf
        right[lo: lo + chunk] = canon[sims.argmax(1)] == d
    for s, ok in zip(owner, right.tolist(), strict=False):
        out_sections[s]["total"] += 1
        out_sections[s]["correct"] += int(ok)

    def acc(pick: list[dict[str, Any]]) -> float | None:
        total = sum(x["total"] for x in pick)
        return sum(x["correct"] for x in pick) / total if total else None

    syntactic = [x for x in out_sections if x["section"].startswith("gram")]
    semantic = [x for x in out_sections if not x["section"].startswith("gram")]
    for x in out_sections:
        x["accuracy"] = acc([x])
    return {"accuracy": acc(out_sections), "correct": int(right.sum()),
            "answered": len(q), "skipped_oov": skipped, "semantic": acc(semantic),
            "syntactic": acc(syntactic), "sections": out_sections}
