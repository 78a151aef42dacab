"""Translating with a loaded translation model: one sentence, a batch, or a stream
of lines (read ahead, sorted by length into batches, output in input order),
with beam search (search.py) over the model's step protocol (models/base.py).

This is the decoding layer's translation front: the CLI, the evaluation and a
long-running server all call it with a checkpoint loaded once (loading.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from seqtool.errors import ConfigError, InputError
from seqtool.runtime import decode_precision

UNSPACED_LANGS = ("ja", "zh")  # written without spaces between words
READ_AHEAD = 1024  # lines read before translating, sorted by length into batches
# the decoding flags and the SearchConfig keys they set (their checks are the keys')
SEARCH_FLAGS = {"beam_size": "--beam", "n_best": "--nbest", "alpha": "--alpha",
                "max_len_ratio": "--max-len-ratio", "no_repeat_ngram": "--no-repeat-ngram",
                "precision": "--precision"}


def join_words(text: str) -> str:
    """Drop the spaces next to a Japanese/Chinese character, keep those between two
    other words: "私 は iphone を 使 う 。" -> "私はiphoneを使う。", "a b 犬" -> "a b犬"."""
    from seqtool.data.tokenizer import is_cjk

    out = ""
    for word in text.split():
        if out and not is_cjk(word[0]) and not is_cjk(out[-1]):
            out += " "
        out += word
    return out


def joins_words(loaded: Any) -> bool:
    """Whether the model writes Japanese/Chinese as words separated by spaces (a
    word-level target vocabulary, as small_parallel_enja's KyTea-segmented text)."""
    return (loaded.config.data.tgt_lang in UNSPACED_LANGS
            and getattr(loaded.tgt_tokenizer, "kind", "") == "word")


@dataclass
class Translation:
    line: int  # 1-based position in the input
    source: str
    texts: list[str]  # n-best translations, best first
    scores: list[float]  # their scores (log-probability / length penalty)
    source_tokens: int = 0
    too_long: bool = False  # longer than every training source sentence
    cut: bool = False  # longer than MAX_SOURCE_TOKENS / MAX_SOURCE_CHARS: only its start read
    unknown: list[str] = field(default_factory=list)  # source pieces read as <unk>
    attention: dict[str, Any] | None = None  # source_tokens, target_tokens, weights
    tokenized: list[str] | None = None  # the model's spaced words, where `texts` joined them

    @property
    def text(self) -> str:
        """The best translation (str(translation) is the same)."""
        return self.texts[0]

    def __str__(self) -> str:
        return self.text

    @property
    def raw(self) -> list[str]:
        """The translations as the model writes them (what BLEU is computed on)."""
        return self.tokenized if self.tokenized is not None else self.texts

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"source": self.source, "translations": [
            {"text": t, "score": s} for t, s in zip(self.texts, self.scores, strict=False)]}
        if self.attention is not None:
            obj["attention"] = self.attention
        return obj


def search_settings(base: Any, **given: Any) -> Any:
    """The checkpoint's [search] defaults with the decoding options that were given
    (SearchConfig keys: beam_size, n_best, alpha, ...), each checked as the TOML key
    is, and the n-best list no longer than the beam."""
    from seqtool.configfile import replace_checked

    s = replace_checked(base, given, SEARCH_FLAGS)
    if s.n_best > s.beam_size:
        raise ConfigError(f"--nbest {s.n_best} is larger than the beam ({s.beam_size})",
                          "the n-best list comes from the beam: raise --beam or lower --nbest")
    return s


def translate_ids(model: Any, sources: Sequence[list[int]], search: Any, device: str = "cpu",
                  batch_size: int = 64, with_attention: bool = False,
                  precision: str = "fp32") -> list[list[Any]]:
    """Beam search over source id lists, `batch_size` sentences (sorted by length) at a
    time, under bf16 autocast when `precision` is bf16; the n-best Hypothesis lists
    come back in input order."""
    from seqtool.data.parallel import source_batches
    from seqtool.data.tokenizer import BOS, PAD
    from seqtool.runtime import autocast, for_precision, to_device
    from seqtool.search import beam_search, length_limits

    model = for_precision(model, precision)
    attention = model.attention_weights if with_attention and model.has_attention else None
    out: list[list[Any]] = [[] for _ in sources]
    for idx, batch in source_batches(sources, batch_size):
        batch = to_device(batch, device)
        limits = length_limits(batch["src_len"], search.max_len_ratio, search.max_len_offset,
                               search.max_len)
        with autocast(device, precision):
            hyps = beam_search(model, batch, beam_size=search.beam_size, n_best=search.n_best,
                               max_len=limits, alpha=search.alpha,
                               no_repeat_ngram=search.no_repeat_ngram, banned=(PAD, BOS),
                               attention=attention, stop=search.stop)
        for i, h in zip(idx, hyps, strict=False):
            out[i] = h
    return out


MAX_SOURCE_CHARS = 20_000  # a longer source line is cut before tokenizing ...
MAX_SOURCE_TOKENS = 1_000  # ... and to this many tokens (RNN time and memory stay bounded)


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def translate_batch(loaded: Any, lines: Sequence[str], search: Any, device: str = "cpu",
                    first_line: int = 1, with_attention: bool = False, join: bool = False,
                    batch_size: int | None = None) -> list[Translation]:
    """Translate `lines`, `batch_size` at a time sorted by length (default: all as one
    batch). An empty line gets an empty translation. join: Japanese/Chinese words
    joined for reading (join_words; `raw` keeps the spaces)."""
    from seqtool.layers.int8 import is_quantized

    src_tok, tgt_tok = loaded.tokenizer, loaded.tgt_tokenizer
    longest = loaded.meta.get("data_stats", {}).get("max_src_len")
    out = [Translation(first_line + i, line, [""], [0.0]) for i, line in enumerate(lines)]
    todo = [i for i, line in enumerate(lines) if line.strip()]
    # the stream limit: a longer line is cut (bounded time and memory), and says so
    sources = [src_tok.encode(lines[i][:MAX_SOURCE_CHARS])[:MAX_SOURCE_TOKENS] for i in todo]
    if not todo:
        return out
    hyps = translate_ids(loaded.model, sources, search, device, batch_size or len(todo),
                         with_attention, decode_precision(search, loaded.config.train.precision,
                                          is_quantized(loaded.model)))
    for i, ids, nbest in zip(todo, sources, hyps, strict=False):
        t = out[i]
        t.texts = [_one_line(tgt_tok.decode(h.tokens)) for h in nbest]
        if join:
            t.tokenized, t.texts = t.texts, [join_words(x) for x in t.texts]
        t.scores = [h.score for h in nbest]
        t.source_tokens = len(ids)
        t.too_long = bool(longest) and len(ids) > longest
        t.cut = len(ids) == MAX_SOURCE_TOKENS or len(lines[i]) > MAX_SOURCE_CHARS
        if with_attention and nbest[0].attention is not None:
            t.attention = _attention_map(src_tok, tgt_tok, lines[i], ids, nbest[0])
    return out


def _attention_map(src_tok: Any, tgt_tok: Any, text: str, ids: list[int], hyp: Any
                   ) -> dict[str, Any]:
    """The best hypothesis's attention: one row per target token (<eos> included when
    generated), one column per source token."""
    from seqtool.data.tokenizer import EOS

    weights = hyp.attention[:, : len(ids)].tolist()  # (steps, S)
    src = src_tok.pieces(text)  # the words themselves, also where they are <unk>
    if len(src) != len(ids):
        src = [src_tok.id_to_token(i) for i in ids]
    tgt = [tgt_tok.id_to_token(i) for i in hyp.tokens]
    if len(weights) > len(tgt):
        tgt.append(tgt_tok.id_to_token(EOS))
    return {"source_tokens": src, "target_tokens": tgt,
            "weights": [[round(w, 4) for w in row] for row in weights[: len(tgt)]]}


def translate_text(loaded: Any, text: str, search: Any, device: str = "cpu",
                   with_attention: bool = False, join: bool = False) -> Translation:
    """One sentence (with the source words the vocabulary does not know)."""
    if not text.strip():
        raise InputError("the sentence is empty", 'give a sentence, e.g. "Ein Mann fährt '
                         'Fahrrad." (or pipe lines into seqtool translate)')
    if with_attention and not loaded.model.has_attention:
        raise ConfigError(f"{loaded.folder} has no attention (model.attention = 'none')",
                          "drop --show-attention / --attention-png, or use a model with attention")
    t = translate_batch(loaded, [text], search, device, 1, with_attention, join)[0]
    tok = loaded.tokenizer
    t.unknown = [p for p in tok.pieces(text) if not tok.is_known(p)]
    return t


def translate_lines(loaded: Any, lines: Iterable[str], search: Any, device: str = "cpu",
                    batch_size: int = 64, join: bool = False,
                    read_ahead: int = READ_AHEAD) -> Iterator[Translation]:
    """Translate a stream of lines: exactly one Translation per input line, in input
    order; memory does not grow with the input. `read_ahead` lines (at least
    `batch_size`) are read, sorted by length into batches of `batch_size` and
    translated before the next ones are read: batches of sentences of similar
    length waste fewer decoding steps on finished or padded rows (bench/RESULTS.md
    has the measured gain)."""
    read_ahead = max(read_ahead, batch_size)
    chunk: list[str] = []
    done = 0
    for line in lines:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == read_ahead:
            yield from translate_batch(loaded, chunk, search, device, done + 1, join=join,
                                       batch_size=batch_size)
            done += len(chunk)
            chunk = []
    if chunk:
        yield from translate_batch(loaded, chunk, search, device, done + 1, join=join,
                                   batch_size=batch_size)


def score_translations(hypotheses: Sequence[str], reference: Any, loaded: Any,
                       tgt: str | None = None, tokenize: str | None = None) -> dict[str, Any]:
    """BLEU/chrF of translations against a reference file, with the BLEU tokenizer the
    model asks for (metrics.bleu_tokenize_for) and its target tokenizer's case."""
    from seqtool.metrics import bleu_tokenize_for, score_against

    data = loaded.config.data
    return score_against(hypotheses, reference,
                         bleu_tokenize_for(tokenize, data.bleu_tokenize, tgt or data.tgt_lang),
                         loaded.tgt_tokenizer.lowercase)
