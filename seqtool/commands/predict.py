"""`seqtool predict` and `seqtool generate`: use a language model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.errors import CheckpointError, InputError

DEFAULT_LM = "lm-wikitext2"


def shipped_model(name: str) -> Path:
    """Folder of a model shipped in the package's checkpoints/."""
    from importlib import resources

    folder = Path(str(resources.files("seqtool.checkpoints").joinpath(name)))
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"the shipped model {name!r} is not installed",
                              "pass --model CKPT, or reinstall seqtool from a full checkout")
    return folder


def load_lm(model_path: Path | None, device: str = "cpu") -> Any:
    from seqtool.checkpoint import load_checkpoint

    return load_checkpoint(model_path or shipped_model(DEFAULT_LM), expect_kind="lm",
                           device=device)


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


def predict_next(text: str, top_k: int, model_path: Path | None = None, device: str = "cpu",
                 show_unk: bool = False) -> dict[str, Any]:
    import torch

    from seqtool.data.tokenizer import BOS, PAD, UNK

    loaded = load_lm(model_path, device)
    tok = loaded.tokenizer
    ids, unknown = encode_prompt(text, tok)
    with torch.no_grad():
        prompt = torch.tensor(ids, device=device)[:, None]  # (T, 1)
        state, last = loaded.model.start({"prompt": prompt})
        lp, _ = loaded.model.step(last, state)  # (1, V)
    probs = lp[0].float().exp()
    probs[[PAD, BOS] + ([] if show_unk else [UNK])] = 0.0
    top = probs.topk(min(top_k, tok.vocab_size - 3))
    cands = [{"token": tok.id_to_token(i), "probability": float(p)}
             for p, i in zip(top.values.tolist(), top.indices.tolist())]
    words = [c["token"] for c in cands if c["token"] != "<eos>"]
    prediction = words[0] if words else cands[0]["token"]
    return {"prompt": text, "candidates": cands, "prediction": prediction, "unknown": unknown}


def generate_text(text: str, max_tokens: int, temperature: float, top_k: int, top_p: float,
                  greedy: bool, seed: int | None, num_samples: int,
                  model_path: Path | None = None, device: str = "cpu") -> dict[str, Any]:
    import torch

    from seqtool.data.tokenizer import BOS, EOS, PAD, UNK
    from seqtool.decoding import decode

    loaded = load_lm(model_path, device)
    tok = loaded.tokenizer
    ids, unknown = encode_prompt(text, tok)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    if gen is None:
        gen = torch.Generator()
        gen.seed()
    rows = 1 if greedy else num_samples
    prompt = torch.tensor(ids, device=device)[:, None].expand(-1, rows).contiguous()
    out = decode(loaded.model, {"prompt": prompt}, max_tokens, sample=not greedy,
                 temperature=temperature, top_k=top_k, top_p=top_p,
                 banned=(PAD, BOS, UNK), generator=gen)
    samples = []
    for row in out.tokens:
        if tok.kind == "word":
            samples.append(" ".join("\n" if i == EOS else tok.id_to_token(i) for i in row)
                           .replace(" \n ", "\n").strip())
        else:
            samples.append(tok.decode(row))
    return {"prompt": text, "samples": samples, "scores": out.scores, "unknown": unknown,
            "greedy": greedy, "seed": seed}
