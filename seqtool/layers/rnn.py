"""Recurrent layers: Elman RNN (tanh/relu), LSTM and GRU on torch's fused
kernels, and an LSTM with peephole connections as a custom cell.

All take padded, time-major input `(T, B, D)` (packed sequences are several
times slower on a CPU, and padded input keeps nn.LSTM on its oneDNN path).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu", "peephole")


class PeepholeLSTM(nn.Module):
    """LSTM whose gates also see the cell state (Gers & Schmidhuber 2000).

    i = s(W_i x + U_i h + p_i * c_prev),  f = s(W_f x + U_f h + p_f * c_prev)
    c = f * c_prev + i * tanh(W_g x + U_g h),  o = s(W_o x + U_o h + p_o * c),
    h = o * tanh(c).  The constant error carousel (CEC) is the `c` path.
    nn.LSTM has no peepholes, so this runs a Python time loop: the input
    projections for all steps are one matmul, only the recurrent matmul and
    the pointwise ops loop.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dirs = 2 if bidirectional else 1
        self.dropout = dropout
        self.w_ih = nn.ParameterList()
        self.w_hh = nn.ParameterList()
        self.bias = nn.ParameterList()
        self.peep = nn.ParameterList()
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * self.dirs
            for _ in range(self.dirs):
                self.w_ih.append(nn.Parameter(torch.empty(4 * hidden_size, in_size)))
                self.w_hh.append(nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
                self.bias.append(nn.Parameter(torch.zeros(4 * hidden_size)))
                self.peep.append(nn.Parameter(torch.zeros(3, hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = self.hidden_size ** -0.5
        for w in list(self.w_ih) + list(self.w_hh):
            nn.init.uniform_(w, -bound, bound)
        for b in self.bias:
            nn.init.zeros_(b)
            b.data[self.hidden_size: 2 * self.hidden_size] = 1.0  # forget-gate bias

    def _run(self, x: Tensor, k: int, h: Tensor, c: Tensor, reverse: bool
             ) -> tuple[Tensor, Tensor, Tensor]:
        gates_x = torch.addmm(self.bias[k], x.flatten(0, 1), self.w_ih[k].t())
        gates_x = gates_x.view(x.shape[0], x.shape[1], -1)  # (T, B, 4H)
        p_i, p_f, p_o = self.peep[k]
        outs = []
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        for t in steps:
            g = gates_x[t] + h @ self.w_hh[k].t()
            gi, gf, gg, go = g.chunk(4, dim=1)
            i = torch.sigmoid(gi + p_i * c)
            f = torch.sigmoid(gf + p_f * c)
            c = f * c + i * torch.tanh(gg)
            o = torch.sigmoid(go + p_o * c)
            h = o * torch.tanh(c)
            outs.append(h)
        if reverse:
            outs.reverse()
        return torch.stack(outs), h, c

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batch = x.shape[1]
        n = self.num_layers * self.dirs
        if state is None:
            z = x.new_zeros(n, batch, self.hidden_size)
            state = (z, z)
        h0, c0 = state
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.dirs):
                k = layer * self.dirs + d
                out, h, c = self._run(x, k, h0[k], c0[k], reverse=d == 1)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            x = torch.cat(outs, dim=2) if self.dirs == 2 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = nn.functional.dropout(x, self.dropout, True)
        return x, (torch.stack(hs), torch.stack(cs))


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
             dropout: float = 0.0, bidirectional: bool = False) -> nn.Module:
    """A stacked recurrent layer, time-major: forward(x (T,B,D), state) -> (out, state)."""
    drop = dropout if num_layers > 1 else 0.0
    if cell == "lstm":
        return nn.LSTM(input_size, hidden_size, num_layers, dropout=drop,
                       bidirectional=bidirectional)
    if cell == "gru":
        return nn.GRU(input_size, hidden_size, num_layers, dropout=drop,
                      bidirectional=bidirectional)
    if cell in ("rnn_tanh", "rnn_relu"):
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity=cell[4:],
                      dropout=drop, bidirectional=bidirectional)
    if cell == "peephole":
        return PeepholeLSTM(input_size, hidden_size, num_layers, drop, bidirectional)
    raise ValueError(f"unknown cell {cell!r}; valid: {', '.join(CELLS)}")


def has_cell_state(cell: str) -> bool:
    return cell in ("lstm", "peephole")
