"""`seqtool translate`: pick or load a translation model, translate one sentence
or a stream of lines (lazily, sorted by length in a read-ahead buffer, output in
input order), and score translations against references with sacrebleu."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtool.errors import CheckpointError, ConfigError, CorpusError, DataError, InputError

SHIPPED_PREFIX = "translate-"  # shipped models: checkpoints/translate-<src>-<tgt>/
PARALLEL_FORMATS = ("parallel", "parallel-gz")
UNSPACED_LANGS = ("ja", "zh")  # written without spaces between words
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def join_words(text: str) -> str:
    """Drop the spaces next to a Japanese/Chinese character, keep those between two
    other words: "私 は iphone を 使 う 。" -> "私はiphoneを使う。", "a b 犬" -> "a b犬"."""
    out = ""
    for word in text.split():
        if out and not _CJK.match(word[0]) and not _CJK.match(out[-1]):
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
    unknown: list[str] = field(default_factory=list)  # source pieces read as <unk>
    attention: dict[str, Any] | None = None  # source_tokens, target_tokens, weights
    tokenized: list[str] | None = None  # the model's spaced words, where `texts` joined them

    @property
    def raw(self) -> list[str]:
        """The translations as the model writes them (what BLEU is computed on)."""
        return self.tokenized if self.tokenized is not None else self.texts

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"source": self.source, "translations": [
            {"text": t, "score": s} for t, s in zip(self.texts, self.scores)]}
        if self.attention is not None:
            obj["attention"] = self.attention
        return obj


# --------------------------------------------------------------------------- models
def checkpoints_root() -> Path:
    """The package's checkpoints/ folder (shipped models)."""
    from importlib import resources

    return Path(str(resources.files("seqtool.checkpoints")))


def shipped_translators() -> list[str]:
    """Names of the shipped translation models, e.g. ["translate-de-en"]."""
    root = checkpoints_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.name.startswith(SHIPPED_PREFIX) and (p / "config.json").is_file())


def load_translator(model_path: Path | None, src: str | None = None, tgt: str | None = None,
                    device: str = "cpu") -> Any:
    """A translation checkpoint (--model), or the shipped model for --src/--tgt."""
    from seqtool.checkpoint import load_checkpoint

    if model_path is None:
        available = shipped_translators()
        listing = ", ".join(available) if available else "none are installed yet"
        if not src or not tgt:
            raise CheckpointError("no translation model given",
                                  f"pass --model CKPT, or --src and --tgt to pick a shipped "
                                  f"model (shipped: {listing})")
        name = f"{SHIPPED_PREFIX}{src}-{tgt}"
        if name not in available:
            raise CheckpointError(f"no shipped model translates {src} -> {tgt}",
                                  f"shipped: {listing}; or train one (seqtool train translate "
                                  f"--src {src} --tgt {tgt} ...) and pass --model RUN")
        model_path = checkpoints_root() / name
    loaded = load_checkpoint(model_path, expect_kind="translate", device=device)
    data = loaded.config.data
    for flag, asked, trained in (("--src", src, data.src_lang), ("--tgt", tgt, data.tgt_lang)):
        if asked and trained and asked != trained:
            raise ConfigError(f"{loaded.folder} translates {data.src_lang} -> {data.tgt_lang}; "
                              f"{flag} {asked} does not match",
                              f"drop {flag}, or use a model for that language")
    return loaded


def search_settings(base: Any, beam: int | None = None, nbest: int | None = None,
                    alpha: float | None = None, max_len_ratio: float | None = None,
                    no_repeat_ngram: int | None = None, precision: str | None = None) -> Any:
    """The checkpoint's [search] defaults with the flags that were given."""
    changes = {"beam_size": beam, "n_best": nbest, "alpha": alpha,
               "max_len_ratio": max_len_ratio, "no_repeat_ngram": no_repeat_ngram,
               "precision": precision}
    s = dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
    if s.n_best > s.beam_size:
        raise ConfigError(f"--nbest {s.n_best} is larger than the beam ({s.beam_size})",
                          "the n-best list comes from the beam: raise --beam or lower --nbest")
    return s


# --------------------------------------------------------------------------- translating
def decode_precision(search: Any, train_precision: str) -> str:
    """search.precision, with "auto" meaning the precision the model trained in."""
    return train_precision if search.precision == "auto" else search.precision


def translate_ids(model: Any, sources: Sequence[list[int]], search: Any, device: str = "cpu",
                  batch_size: int = 64, with_attention: bool = False,
                  precision: str = "fp32") -> list[list[Any]]:
    """Beam search over source id lists, `batch_size` sentences (sorted by length) at a
    time, under bf16 autocast when `precision` is bf16; the n-best Hypothesis lists
    come back in input order."""
    import torch

    from seqtool.data.parallel import source_batches
    from seqtool.data.tokenizer import BOS, PAD
    from seqtool.search import beam_search, length_limits
    from seqtool.training import autocast

    attention = getattr(model, "attention_weights", None) if with_attention else None
    out: list[list[Any]] = [[] for _ in sources]
    for idx, batch in source_batches(sources, batch_size):
        batch = {k: v.to(device) for k, v in batch.items()}
        limits = length_limits(batch["src_len"], search.max_len_ratio, search.max_len_offset,
                               search.max_len)
        with autocast(torch.device(device), precision):
            hyps = beam_search(model, batch, beam_size=search.beam_size, n_best=search.n_best,
                               max_len=limits, alpha=search.alpha,
                               no_repeat_ngram=search.no_repeat_ngram, banned=(PAD, BOS),
                               attention=attention, stop=search.stop)
        for i, h in zip(idx, hyps):
            out[i] = h
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def translate_batch(loaded: Any, lines: Sequence[str], search: Any, device: str = "cpu",
                    first_line: int = 1, with_attention: bool = False, join: bool = False,
                    batch_size: int | None = None) -> list[Translation]:
    """Translate `lines`, `batch_size` at a time sorted by length (default: all as one
    batch). An empty line gets an empty translation. join: Japanese/Chinese words
    joined for reading (join_words; `raw` keeps the spaces)."""
    src_tok, tgt_tok = loaded.tokenizer, loaded.tgt_tokenizer
    longest = loaded.meta.get("data_stats", {}).get("max_src_len")
    out = [Translation(first_line + i, line, [""], [0.0]) for i, line in enumerate(lines)]
    todo = [i for i, line in enumerate(lines) if line.strip()]
    sources = [src_tok.encode(lines[i]) for i in todo]
    if not todo:
        return out
    hyps = translate_ids(loaded.model, sources, search, device, batch_size or len(todo),
                         with_attention, decode_precision(search, loaded.config.train.precision))
    for i, ids, nbest in zip(todo, sources, hyps):
        t = out[i]
        t.texts = [_one_line(tgt_tok.decode(h.tokens)) for h in nbest]
        if join:
            t.tokenized, t.texts = t.texts, [join_words(x) for x in t.texts]
        t.scores = [h.score for h in nbest]
        t.source_tokens = len(ids)
        t.too_long = bool(longest) and len(ids) > longest
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
    if with_attention and loaded.config.model.attention == "none":
        raise ConfigError(f"{loaded.folder} has no attention (model.attention = 'none')",
                          "drop --show-attention / --attention-png, or use a model with attention")
    t = translate_batch(loaded, [text], search, device, 1, with_attention, join)[0]
    tok = loaded.tokenizer
    t.unknown = [p for p in tok.pieces(text) if not tok.is_known(p)]
    return t


READ_AHEAD = 1024  # lines read before translating, sorted by length into batches


def translate_lines(loaded: Any, lines: Iterable[str], search: Any, device: str = "cpu",
                    batch_size: int = 64, join: bool = False,
                    read_ahead: int = READ_AHEAD) -> Iterator[Translation]:
    """Translate a stream of lines: exactly one Translation per input line, in input
    order; memory does not grow with the input. `read_ahead` lines (at least
    `batch_size`) are read, sorted by length into batches of `batch_size` and
    translated before the next ones are read: batches of sentences of similar
    length waste fewer decoding steps on finished or padded rows (1.4x the
    sentences/s of batching the lines as they come, beam 5, bench/RESULTS.md)."""
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


# --------------------------------------------------------------------------- data and scores
def corpus_split(name: str, split: str) -> str:
    """A catalog split name, also accepting its file name (multi30k: test_2016_flickr)."""
    from seqtool.data.corpora import get_info

    info = get_info(name)
    if split in info.splits:
        return split
    aliases = {str(p).split("/")[-1].split(".{lang}")[0]: k for k, p in info.splits.items()}
    if split in aliases:
        return aliases[split]
    raise CorpusError(f"{name} has no split {split!r}",
                      "splits: " + ", ".join(f"{k} ({a})" if a != k else k
                                             for a, k in aliases.items()))


def corpus_pairs(name: str, split: str, src: str, tgt: str) -> tuple[list[str], list[str], int]:
    """Aligned source/target lines of a parallel corpus split (empty pairs dropped),
    and how many were dropped."""
    from seqtool.data.corpora import corpus_lines, info_of_kind
    from seqtool.data.parallel import align_lines

    info = info_of_kind(name, PARALLEL_FORMATS, "parallel", "translation corpora",
                        "or give plain files with --train-src/--train-tgt/--valid-src/"
                        "--valid-tgt")
    langs = ", ".join(info.languages)
    if not src or not tgt:
        raise ConfigError(f"{name} needs a source and a target language",
                          f"give --src and --tgt (languages: {langs})")
    for lang in (src, tgt):
        if lang not in info.languages:
            raise CorpusError(f"{name} has no language {lang!r}", f"languages: {langs}")
    if src == tgt:
        raise ConfigError(f"source and target are both {src!r}", f"languages: {langs}")
    split = corpus_split(name, split)
    return align_lines(corpus_lines(name, split, src), corpus_lines(name, split, tgt),
                       f"{name} {split}.{src}", f"{name} {split}.{tgt}")


def bleu_tokenize_for(loaded: Any, tgt: str | None, override: str | None) -> str:
    """--bleu-tokenize, else the model's data.bleu_tokenize, else by target language."""
    from seqtool.metrics import default_bleu_tokenize

    data = loaded.config.data
    return override or data.bleu_tokenize or default_bleu_tokenize(tgt or data.tgt_lang)


def score_lines(hypotheses: Sequence[str], references: Sequence[str], tokenize: str,
                lowercase: bool) -> dict[str, Any]:
    """BLEU and chrF with their sacrebleu signatures."""
    from seqtool.metrics import bleu, chrf

    b = bleu(hypotheses, references, tokenize, lowercase)
    c = chrf(hypotheses, references, lowercase)
    return {"bleu": b["score"], "chrf": c["score"], "bleu_signature": b["signature"],
            "chrf_signature": c["signature"], "sentences": len(hypotheses),
            "bleu_precisions": b["precisions"], "brevity_penalty": b["bp"]}


def score_against(hypotheses: Sequence[str], reference: Path, loaded: Any,
                  tgt: str | None = None, tokenize: str | None = None) -> dict[str, Any]:
    """Score translations against a reference file with one line per translation."""
    from seqtool.data.text import read_lines

    refs = read_lines(reference, "reference file")
    if len(refs) != len(hypotheses):
        raise DataError(f"the reference {reference} has {len(refs)} lines, but "
                        f"{len(hypotheses)} sentences were translated",
                        "give the reference translation of the same input, one line per line")
    result = score_lines(hypotheses, refs, bleu_tokenize_for(loaded, tgt, tokenize),
                         loaded.tgt_tokenizer.lowercase)
    return {**result, "reference": str(reference)}
