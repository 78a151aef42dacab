"""The reference: a minimal, independent re-implementation of the recipe of
pytorch/examples `word_language_model` (model.py RNNModel + main.py train()).

It mirrors that recipe, written here from its description, not copied:
  * model: nn.Embedding -> dropout -> nn.LSTM(ninp, nhid, nlayers, dropout) ->
    dropout -> nn.Linear decoder, its weight tied to the embedding;
    embedding / decoder weights ~ U(-0.1, 0.1), decoder bias 0, the LSTM keeps
    torch's default init;
  * training: CrossEntropyLoss (mean over the window), the hidden state is
    carried across windows and detached ("repackaged") every batch, gradient
    norm clipped to `clip`, then plain SGD written out by hand
    (p -= lr * grad) as in its main.py; fp32 only;
  * evaluation: eval mode, hidden state carried across windows, no grad.

The PTB "medium" command line of that example is
`--emsize 650 --nhid 650 --dropout 0.5 --epochs 40 --tied` with its defaults
lr 20, clip 0.25, bptt 35; the benchmark uses batch 64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

Hidden = tuple[Tensor, Tensor]


class ReferenceLSTMLM(nn.Module):
    """Embedding, dropout, stacked LSTM, dropout, tied linear decoder."""

    def __init__(self, vocab: int, emb_dim: int = 650, hidden: int = 650, layers: int = 2,
                 dropout: float = 0.5, tie: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden
        self.layers = layers
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, emb_dim)
        self.rnn = nn.LSTM(emb_dim, hidden, layers, dropout=dropout)
        self.decoder = nn.Linear(hidden, vocab)
        if tie:
            if hidden != emb_dim:
                raise ValueError("tied weights need hidden == emb_dim")
            self.decoder.weight = self.encoder.weight
        init_range = 0.1
        nn.init.uniform_(self.encoder.weight, -init_range, init_range)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -init_range, init_range)

    def init_hidden(self, batch: int) -> Hidden:
        w = self.encoder.weight
        return (w.new_zeros(self.layers, batch, self.hidden_size),
                w.new_zeros(self.layers, batch, self.hidden_size))

    def forward(self, ids: Tensor, hidden: Hidden) -> tuple[Tensor, Hidden]:
        """ids (T, B) -> logits (T * B, V) and the new hidden state."""
        emb = self.drop(self.encoder(ids))
        out, hidden = self.rnn(emb, hidden)
        logits = self.decoder(self.drop(out))
        return logits.view(-1, logits.shape[-1]), hidden


def repackage(hidden: Hidden) -> Hidden:
    """Cut the graph between windows (truncated BPTT)."""
    return (hidden[0].detach(), hidden[1].detach())


def train_steps(model: ReferenceLSTMLM, windows: Iterable[tuple[Tensor, Tensor]],
                batch_size: int, lr: float = 20.0, clip: float = 0.25,
                on_step: Callable[[float, int], None] | None = None) -> None:
    """One pass over `windows` of (input (T, B), target (T, B)), as in main.py's train().

    `on_step(loss, tokens)` is called after every update (the loss value is
    read with .item(), as main.py does for its running total). Call it once
    per epoch: the hidden state starts at zero, as at main.py's epoch start.
    """
    criterion = nn.CrossEntropyLoss()
    model.train()
    hidden = model.init_hidden(batch_size)
    for inp, target in windows:
        hidden = repackage(hidden)
        model.zero_grad()
        logits, hidden = model(inp, hidden)
        loss = criterion(logits, target.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.add_(p.grad, alpha=-lr)
        if on_step is not None:
            on_step(loss.item(), target.numel())


@torch.no_grad()
def evaluate(model: ReferenceLSTMLM, windows: Iterable[tuple[Tensor, Tensor]],
             batch_size: int) -> float:
    """Mean NLL per token over `windows` (hidden state carried), in eval mode."""
    criterion = nn.CrossEntropyLoss(reduction="sum")
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(batch_size)
    total, tokens = 0.0, 0
    for inp, target in windows:
        logits, hidden = model(inp, hidden)
        total += float(criterion(logits, target.reshape(-1)))
        tokens += target.numel()
    model.train(was_training)
    return total / max(tokens, 1)
