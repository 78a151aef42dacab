"""What every model answers: the step protocol shared by every generator (LM,
seq2seq, HRED/VHRED), the training entry `forward`, and a few small questions
callers would otherwise answer by branching on the task or on `hasattr`.

Decoding (greedy, beam, sampling) is written once against

    start(batch)            -> (State, first_tokens (B,))
    step(tokens (B,), State) -> (log_probs (B, V), State)
    reorder(State, index)   -> State       (beam search: pick/duplicate rows)

and training against the module call (so the model can be wrapped, e.g. by
DistributedDataParallel or torch.compile, which see only `forward`):

    model(batch, carry)     -> LossResult  (summed NLL, token count, new carry)

`carry` is state kept across batches (the LM's hidden state in truncated
BPTT); models without one return None. `loss(batch, carry)` is the same call
under its old name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from seqtool.layers.state import detach_nested, reorder_nested

__all__ = ["Embeddings", "LossResult", "SeqModel", "StepModel", "count_parameters",
           "detach_nested", "reorder_nested"]


@dataclass
class LossResult:
    loss_sum: Tensor  # summed negative log-likelihood (plus any extra loss terms)
    tokens: int  # number of predicted tokens in loss_sum
    carry: Any = None  # detached state for the next batch
    extra: dict[str, float] = field(default_factory=dict)  # e.g. KL per reply


@dataclass
class Embeddings:
    """An input embedding table and which tokenizer's ids index it."""

    name: str  # "vocabulary", "source", "target": how reports name it
    module: nn.Module  # nn.Embedding, or AdaptiveEmbedding (has set_rows)
    side: str  # "source" or "target" tokenizer


class StepModel(Protocol):
    kind: str

    def start(self, batch: dict[str, Tensor]) -> tuple[Any, Tensor]: ...
    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...
    def reorder(self, state: Any, index: Tensor) -> Any: ...


class SeqModel(nn.Module):
    """Base class of the trainable generators. Subclasses implement `forward(batch,
    carry) -> LossResult`, the step protocol, and answer:

        kind             the task ("lm", "translate", "chat"): checkpoint meta
        has_attention    decoding can return attention weights
        has_latent       validation also reports the KL per reply (VHRED)
        describe(params) the model card's model line
        input_embeddings() the tables --init-embeddings writes into
    """

    kind = ""
    has_attention = False
    has_latent = False

    def loss(self, batch: dict[str, Tensor], carry: Any = None) -> LossResult:
        """The training loss (the module call, so hooks and wrappers see it)."""
        result: LossResult = self(batch, carry)
        return result

    def describe(self, params: int) -> str:
        return f"{type(self).__name__}; {params:,} parameters"

    def attention_weights(self, state: Any) -> Tensor | None:
        """With has_attention: the last step's attention over the source (B, S)."""
        return None

    def input_embeddings(self) -> list[Embeddings]:
        return []


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level component (shared ones counted once, where first seen);
    an int8 model's int8 weight buffers (layers/int8.py) count as its parameters."""
    seen: set[int] = set()
    counts: dict[str, int] = {}
    for name, module in model.named_children():
        n = 0
        int8 = [b for b in module.buffers() if b.dtype == torch.int8]
        for p in [*module.parameters(), *int8]:
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
        if n:
            counts[name] = n
    for name, p in model.named_parameters(recurse=False):
        counts[name] = p.numel()
    return counts


