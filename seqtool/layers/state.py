"""Nested recurrent states: the tuples, lists and dicts of tensors that RNNs and
decoders carry between steps (an LSTM's (h, c), a decoder's state dict).

Beam search picks or duplicates rows of them (`reorder_nested`); truncated BPTT
cuts the graph behind them between windows (`detach_nested`, pytorch/examples'
`repackage_hidden`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


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


def carry_structure(carry: Any) -> Any:
    """A nested carry's shape without its tensors (JSON: None, "t" or lists), for
    last/; rebuild_carry puts flatten_carry's tensors back into it."""
    if carry is None:
        return None
    if isinstance(carry, Tensor):
        return "t"
    return [carry_structure(c) for c in carry]


def rebuild_carry(structure: Any, flat: list[Tensor]) -> Any:
    if structure is None:
        return None
    if structure == "t":
        return flat.pop(0)
    return tuple(rebuild_carry(s, flat) for s in structure)


def flatten_carry(carry: Any) -> list[Tensor]:
    if carry is None:
        return []
    if isinstance(carry, Tensor):
        return [carry]
    return [t for c in carry for t in flatten_carry(c)]
