"""`seqtool predict` and `seqtool generate`: use a language model loaded once
(loading.load_lm), so a long-running process can answer many prompts."""

from __future__ import annotations

from typing import Any

from seqtool.config import SamplingConfig
from seqtool.errors import InputError


def encode_prompt(text: str, tokenizer: Any) -> tuple[list[int], list[str]]:
    """Prompt ids and the words the vocabulary does not know."""
    if not text.strip():
        raise InputError("the prompt is empty", 'give some words, e.g. "some of them looks like"')
    pieces = tokenizer.pieces(text)
    unknown = [p for p in pieces if not tokenizer.is_known(p)]
    ids = tokenizer.encode(text)
    if not ids:
        raise InputError("the prompt has no tokens after tokenization", "give some words")
    return ids, unknown


def predict_next(loaded: Any, *, text: str, top_k: int = 10, show_unk: bool = False
                 ) -> dict[str, Any]:
    """The `top_k` most probable next tokens after `text` ("<unk>" left out unless
    `show_unk`), the predicted word, and the prompt's words the vocabulary lacks."""
    import torch

    from seqtool.data.tokenizer import BOS, PAD, UNK

    tok = loaded.tokenizer
    device = next(loaded.model.parameters()).device
    ids, unknown = encode_prompt(text, tok)
    with torch.no_grad():
        prompt = torch.tensor(ids, device=device)[:, None]  # (T, 1)
        state, last = loaded.model.start({"prompt": prompt})
        lp, _ = loaded.model.step(last, state)  # (1, V)
    probs = lp[0].float().exp()
    probs[[PAD, BOS] + ([] if show_unk else [UNK])] = 0.0
    top = probs.topk(min(top_k, tok.vocab_size - 3))
    cands = [{"token": tok.id_to_token(i), "probability": float(p)}
             for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=False)]
    words = [c["token"] for c in cands if c["token"] != "<eos>"]
    prediction = words[0] if words else cands[0]["token"]
    return {"prompt": text, "candidates": cands, "prediction": prediction, "unknown": unknown}


def generate_text(loaded: Any, *, text: str, sampling: SamplingConfig | None = None,
                  seed: int | None = None) -> dict[str, Any]:
    """Continue `text`: `sampling.num_samples` samples (one row each), or the greedy
    continuation; `seed` makes samples reproducible."""
    import torch

    from seqtool.data.tokenizer import BOS, EOS, PAD, UNK
    from seqtool.decoding import decode

    s = sampling or SamplingConfig()
    tok = loaded.tokenizer
    device = next(loaded.model.parameters()).device
    ids, unknown = encode_prompt(text, tok)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    if gen is None:
        gen = torch.Generator()
        gen.seed()
    rows = 1 if s.greedy else s.num_samples
    prompt = torch.tensor(ids, device=device)[:, None].expand(-1, rows).contiguous()
    out = decode(loaded.model, {"prompt": prompt}, s.max_tokens, sample=not s.greedy,
                 temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                 banned=(PAD, BOS, UNK), generator=gen)
    samples = []
    for row in out.tokens:
        if tok.kind == "word":
            samples.append(" ".join("\n" if i == EOS else tok.id_to_token(i) for i in row)
                           .replace(" \n ", "\n").strip())
        else:
            samples.append(tok.decode(row))
    return {"prompt": text, "samples": samples, "scores": out.scores, "unknown": unknown,
            "greedy": s.greedy, "seed": seed}
