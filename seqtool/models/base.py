"""The step protocol shared by every generator (LM, seq2seq, HRED/VHRED).

Decoding (greedy, beam, sampling) is written once against this interface:

    start(batch)            -> (State, first_tokens (B,))
    step(tokens (B,), State) -> (log_probs (B, V), State)
    reorder(State, index)   -> State       (beam search: pick/duplicate rows)

and training against

    loss(batch, carry)      -> LossResult  (summed NLL, token count, new carry)

`carry` is state kept across batches (the LM's hidden state in truncated
BPTT); models without one return None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor


@dataclass
class LossResult:
    loss_sum: Tensor  # summed negative log-likelihood (plus any extra loss terms)
    tokens: int  # number of predicted tokens in loss_sum
    carry: Any = None  # detached state for the next batch
    extra: dict[str, float] = field(default_factory=dict)  # e.g. KL per reply


class StepModel(Protocol):
    kind: str

    def start(self, batch: dict[str, Tensor]) -> tuple[Any, Tensor]: ...
    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...
    def reorder(self, state: Any, index: Tensor) -> Any: ...
    def loss(self, batch: dict[str, Tensor], carry: Any = None) -> LossResult: ...


def reorder_nested(state: Any, index: Tensor, dim: int = 1) -> Any:
    """Index-select every tensor in a nested tuple/list/dict along `dim`."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.index_select(dim, index)
    if isinstance(state, (tuple, list)):
        return type(state)(reorder_nested(s, index, dim) for s in state)
    if isinstance(state, dict):
        return {k: reorder_nested(v, index, dim) for k, v in state.items()}
    raise TypeError(f"cannot reorder {type(state)}")


def detach_nested(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_nested(s) for s in state)
    return {k: detach_nested(v) for k, v in state.items()}
