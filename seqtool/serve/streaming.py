"""Language-model generation token by token, for the server's event stream: the
steps of commands.predict.generate_text for one prompt and one sample (the same
batch rows, banned tokens and generators), so a stream ends with what
generate_text returns for the same seed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Step:
    token: str  # the new token as the vocabulary writes it ("\n" for <eos>, word level)
    text: str  # the whole continuation so far, as generate_text would write it


def generate_steps(loaded: Any, text: str, sampling: Any, seed: int | None
                   ) -> Iterator[Step]:
    """Continue `text`, one Step per generated token (sampling.num_samples is taken as 1);
    the last Step's text is generate_text's sample."""
    import torch

    from seqtool.commands.predict import (_generators, _sample_text, encode_prompts, padded,
                                          prompt_tensor)
    from seqtool.data.tokenizer import BOS, EOS, PAD, UNK
    from seqtool.decoding import filter_log_probs, sample_rows

    tok, model, s = loaded.tokenizer, loaded.model, sampling
    prompts = encode_prompts([text], tok)
    rows = padded([0])
    gens = _generators(len(rows), seed)  # as generate_batch seeds them
    ids: list[int] = []
    with torch.no_grad():
        state, tokens = model.start({"prompt": prompt_tensor(loaded, prompts, rows)})
        for _ in range(s.max_tokens):
            lp, state = model.step(tokens, state)  # (B, V)
            lp = lp.float()
            lp[:, [PAD, BOS, UNK]] = float("-inf")
            if s.greedy:
                tokens = lp.argmax(-1)
            else:
                probs = filter_log_probs(lp, s.top_k, s.top_p, s.temperature).exp()
                tokens = sample_rows(probs, gens).to(lp.device)
            ids.append(int(tokens[0]))
            piece = "\n" if ids[-1] == EOS and tok.kind == "word" else tok.id_to_token(ids[-1])
            yield Step(piece, _sample_text(ids, tok))
