"""`seqtool predict` and `seqtool generate`: use a language model loaded once
(loading.load_lm), so a long-running process can answer many prompts.

Many prompts are answered in batches of prompts with the same number of tokens
(the LM reads a prompt without padding, so a batch of equal lengths gives each
row what it would get alone), every batch at least MIN_ROWS rows (`padded`); each
prompt samples with its own generator, seeded as a call with that prompt alone
would seed it. `predict_next` and `generate_text` are the one-prompt case of
`predict_batch` and `generate_batch`, so one prompt and many give the same
numbers, to the last bit (tests/test_cli.py; bench/batch_prompts.py on 1,000).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from seqtool.config import SamplingConfig
from seqtool.errors import InputError

READ_AHEAD = 1024  # stdin lines read before answering, grouped by length into batches
BATCH_SIZE = 64  # prompts run together
MIN_ROWS = 8  # every batch has at least this many rows (padded: see `padded`)


@dataclass
class Prompt:
    text: str
    ids: list[int]
    unknown: list[str]  # the words the vocabulary does not know (read as <unk>)
    cut: bool = False  # over MAX_PROMPT_CHARS / MAX_PROMPT_TOKENS: only its end was read


MAX_PROMPT_CHARS = 20_000  # a longer prompt is read from its last 20,000 characters ...
MAX_PROMPT_TOKENS = 1_000  # ... and last 1,000 tokens (bounded time and memory)


def encode_prompt(text: str, tokenizer: Any) -> tuple[list[int], list[str]]:
    """Prompt ids and the words the vocabulary does not know."""
    if not text.strip():
        raise InputError("the prompt is empty", 'give some words, e.g. "some of them looks like"')
    text = text[-MAX_PROMPT_CHARS:]  # the limit: the model reads the prompt's end
    pieces = tokenizer.pieces(text)
    unknown = [p for p in pieces if not tokenizer.is_known(p)]
    ids = tokenizer.encode(text)[-MAX_PROMPT_TOKENS:]
    if not ids:
        raise InputError("the prompt has no tokens after tokenization", "give some words")
    return ids, unknown


def encode_prompts(texts: Sequence[str], tokenizer: Any) -> list[Prompt]:
    """Every prompt encoded; a bad one raises its InputError, numbered when there are
    several ("prompt 3 of 10: the prompt is empty")."""
    out = []
    for i, text in enumerate(texts):
        try:
            ids, unknown = encode_prompt(text, tokenizer)
            out.append(Prompt(text, ids, unknown, cut=len(text) > MAX_PROMPT_CHARS
                              or len(ids) >= MAX_PROMPT_TOKENS))
        except InputError as exc:
            if len(texts) == 1:
                raise
            raise InputError(f"prompt {i + 1} of {len(texts)}: {exc.message}", exc.hint
                             ) from None
    return out


def length_groups(prompts: Sequence[Prompt], batch_size: int) -> Iterator[list[int]]:
    """Indices of prompts with the same token count, at most `batch_size` at a time."""
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p.ids), []).append(i)
    for _, idx in sorted(by_len.items()):
        for k in range(0, len(idx), batch_size):
            yield idx[k:k + batch_size]


def padded(idx: list[int], rows: int = 1) -> list[int]:
    """`idx` with its first prompt repeated until the batch has MIN_ROWS rows (each
    prompt `rows` of them): BLAS picks its kernel by the number of rows, and the
    kernel decides the last bits of float32 (on this project's CPU 1, 2-3 and 4+
    rows differ), so every batch, a prompt alone too, has MIN_ROWS or more. The extra
    rows' results are dropped."""
    missing = -(-MIN_ROWS // rows) - len(idx)
    return idx + idx[:1] * max(0, missing)


def prompt_tensor(loaded: Any, prompts: Sequence[Prompt], idx: list[int], rows: int = 1
                  ) -> Any:
    """The prompts `idx` (all of one length) as the LM's batch["prompt"]: (T, B * rows),
    each prompt repeated in `rows` neighbouring columns."""
    import torch

    device = next(loaded.model.parameters()).device
    ids = torch.tensor([prompts[i].ids for i in idx], device=device).T  # (T, B)
    return ids.repeat_interleave(rows, dim=1).contiguous()  # (T, B * rows)


def predict_batch(loaded: Any, texts: Sequence[str], *, top_k: int = 10,
                  show_unk: bool = False, batch_size: int = BATCH_SIZE) -> list[dict[str, Any]]:
    """predict_next for each of `texts`, `batch_size` prompts of one length at a time;
    results in input order."""
    import torch

    prompts = encode_prompts(texts, loaded.tokenizer)
    out: list[dict[str, Any]] = [{} for _ in prompts]
    with torch.no_grad():
        for idx in length_groups(prompts, batch_size):
            batch = {"prompt": prompt_tensor(loaded, prompts, padded(idx))}
            state, last = loaded.model.start(batch)
            lp, _ = loaded.model.step(last, state)  # (B, V)
            for row, i in enumerate(idx):
                out[i] = _prediction(lp[row], prompts[i], loaded.tokenizer, top_k, show_unk)
    return out


def _prediction(lp: Any, prompt: Prompt, tok: Any, top_k: int, show_unk: bool
                ) -> dict[str, Any]:
    from seqtool.data.tokenizer import BOS, PAD, UNK

    probs = lp.float().exp()
    probs[[PAD, BOS] + ([] if show_unk else [UNK])] = 0.0
    top = probs.topk(min(top_k, tok.vocab_size - 3))
    cands = [{"token": tok.id_to_token(i), "probability": float(p)}
             for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=False)]
    words = [c["token"] for c in cands if c["token"] != "<eos>"]
    prediction = words[0] if words else cands[0]["token"]
    return {"prompt": prompt.text, "candidates": cands, "prediction": prediction,
            "unknown": prompt.unknown, **_cut(prompt)}


def _cut(prompt: Prompt) -> dict[str, Any]:
    """{"cut": true} for a prompt over the limit (only its end was read), else {}:
    the result's shape is unchanged for every other prompt."""
    return {"cut": True} if prompt.cut else {}


def predict_next(loaded: Any, *, text: str, top_k: int = 10, show_unk: bool = False
                 ) -> dict[str, Any]:
    """The `top_k` most probable next tokens after `text` ("<unk>" left out unless
    `show_unk`), the predicted word, and the prompt's words the vocabulary lacks."""
    return predict_batch(loaded, [text], top_k=top_k, show_unk=show_unk)[0]


def _generators(n: int, seed: int | None) -> list[Any]:
    """One generator per prompt: each seeded with `seed` (as a call with that prompt
    alone), or from fresh entropy."""
    import torch

    gens = []
    for _ in range(n):
        g = torch.Generator()
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        gens.append(g)
    return gens


def generate_batch(loaded: Any, texts: Sequence[str], *, sampling: SamplingConfig | None = None,
                   seed: int | None = None, batch_size: int = BATCH_SIZE
                   ) -> list[dict[str, Any]]:
    """generate_text for each of `texts`, `batch_size` prompts of one length at a time
    (each with its `num_samples` rows and its own generator); results in input order."""
    from seqtool.data.tokenizer import BOS, PAD, UNK
    from seqtool.decoding import decode

    s = sampling or SamplingConfig()
    prompts = encode_prompts(texts, loaded.tokenizer)
    rows = 1 if s.greedy else s.num_samples
    out: list[dict[str, Any]] = [{} for _ in prompts]
    for idx in length_groups(prompts, batch_size):
        batch = {"prompt": prompt_tensor(loaded, prompts, padded(idx, rows), rows)}
        gens = _generators(len(padded(idx, rows)), seed)  # one per prompt, padding too
        res = decode(loaded.model, batch, s.max_tokens, sample=not s.greedy,
                     temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                     banned=(PAD, BOS, UNK), generator=gens)
        for k, i in enumerate(idx):
            mine = slice(k * rows, (k + 1) * rows)
            out[i] = {"prompt": prompts[i].text,
                      "samples": [_sample_text(r, loaded.tokenizer) for r in res.tokens[mine]],
                      "scores": res.scores[mine], "unknown": prompts[i].unknown,
                      "greedy": s.greedy, "seed": seed, **_cut(prompts[i])}
    return out


def _sample_text(ids: list[int], tok: Any) -> str:
    """A word-level sample with each <eos> as a line break; a subword one decoded."""
    from seqtool.data.tokenizer import EOS

    if tok.kind == "word":
        return (" ".join("\n" if i == EOS else tok.id_to_token(i) for i in ids)
                .replace(" \n ", "\n").strip())
    return str(tok.decode(ids))


def generate_text(loaded: Any, *, text: str, sampling: SamplingConfig | None = None,
                  seed: int | None = None) -> dict[str, Any]:
    """Continue `text`: `sampling.num_samples` samples (one row each), or the greedy
    continuation; `seed` makes samples reproducible."""
    return generate_batch(loaded, [text], sampling=sampling, seed=seed)[0]


@dataclass
class Answer:
    """One input line's result, or the InputError it raised (empty, no tokens)."""

    line: int  # 1-based
    text: str
    result: dict[str, Any] | None = None
    error: InputError | None = None

    def to_json(self) -> dict[str, Any]:
        if self.result is not None:
            return self.result
        assert self.error is not None
        return {"line": self.line, "prompt": self.text, "error": self.error.message,
                "hint": self.error.hint}


def answer_lines(run: Callable[[list[str]], list[dict[str, Any]]], tokenizer: Any,
                 lines: Iterable[str], read_ahead: int = READ_AHEAD) -> Iterator[Answer]:
    """One Answer per input line, in input order: `read_ahead` lines are read, the good
    ones answered together by `run` (predict_batch or generate_batch with their
    settings), then the next ones; memory does not grow with the input."""
    chunk: list[Answer] = []
    for n, line in enumerate(lines, 1):
        chunk.append(Answer(n, line.rstrip("\r\n")))
        if len(chunk) >= read_ahead:
            yield from _answer(run, tokenizer, chunk)
            chunk = []
    yield from _answer(run, tokenizer, chunk)


def _answer(run: Callable[[list[str]], list[dict[str, Any]]], tokenizer: Any,
            chunk: list[Answer]) -> list[Answer]:
    good = []
    for a in chunk:
        try:
            encode_prompt(a.text, tokenizer)
            good.append(a)
        except InputError as exc:
            a.error = exc
    if good:
        for a, result in zip(good, run([a.text for a in good]), strict=True):
            a.result = result
    return chunk
