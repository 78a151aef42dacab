"""The recurrent encoder: stacked, uni- or bidirectional RNN/LSTM/GRU over a
padded, time-major batch (Bahdanau et al. 2015, section 3.2).

Padding without packed sequences. Batches are right-padded (S, B) with the
lengths beside them; packing is avoided because it is several times slower on
a CPU. The forward direction reads left to right, so its outputs at real
positions never see the padding that follows. The backward direction would
start on the padding, so it runs on each sequence *reversed within its
length* (`flip_padded`: position t < len -> len-1-t, padding stays where it
is) and its outputs are flipped back the same way. Both directions of a
layer therefore see exactly the tokens of their own sentence, and a sentence
encodes the same alone or next to a longer one.

The final state of each direction is read from the outputs rather than from
the RNN's h_n (which would be the state after the padding): forward at
position len-1, backward at position 0. An LSTM's final cell state is not in
its outputs, so only h is returned (JoeyNMT does the same and starts the
decoder's cell state from h).

Each direction of each layer is its own single-layer torch RNN (the same
weights as one nn.GRU(bidirectional=True)), so layer l+1 sees both
directions of layer l, with dropout between layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqtool.layers.rnn import FastDropout, make_rnn


def flip_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each column of x (S, B, ...) within its length; padding stays put.
    Applying it twice gives x back."""
    steps = x.shape[0]
    t = torch.arange(steps, device=x.device)[:, None]  # (S, 1)
    idx = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (S, B)
    idx = idx.view(steps, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)


@dataclass
class Encoded:
    memory: Tensor  # (S, B, D) annotations of the top layer, D = hidden * directions
    final: Tensor  # (B, D) top layer: forward state at len-1 [; backward state at 0]


class RecurrentEncoder(nn.Module):
    def __init__(self, cell: str, input_size: int, hidden: int, layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.dirs = 2 if bidirectional else 1
        self.output_size = hidden * self.dirs
        self.dropout = FastDropout(dropout)
        sizes = [input_size] + [self.output_size] * (layers - 1)
        self.fwd = nn.ModuleList(make_rnn(cell, size, hidden) for size in sizes)
        self.bwd = nn.ModuleList(make_rnn(cell, size, hidden) for size in sizes) \
            if bidirectional else None

    def forward(self, x: Tensor, lengths: Tensor) -> Encoded:
        """x (S, B, E) right-padded, lengths (B,) >= 1 -> Encoded."""
        for layer, rnn in enumerate(self.fwd):
            if layer:
                x = self.dropout(x)
            out, _ = rnn(x)  # (S, B, H)
            if self.bwd is not None:
                back, _ = self.bwd[layer](flip_padded(x, lengths))
                out = torch.cat([out, flip_padded(back, lengths)], dim=2)  # (S, B, 2H)
            x = out
        hidden = x.shape[2] // self.dirs
        last = (lengths - 1).view(1, -1, 1).expand(1, x.shape[1], hidden)  # (1, B, H)
        final = x[..., :hidden].gather(0, last)[0]  # (B, H)
        if self.bwd is not None:
            final = torch.cat([final, x[0, :, hidden:]], dim=1)  # (B, 2H)
        return Encoded(x, final)
