"""VHRED: HRED with a latent variable per reply (Serban et al. 2017, "A
Hierarchical Latent Variable Encoder-Decoder Model for Generating Dialogues",
section 3), trained as a conditional VAE.

    p(z | c)     = N(mu_p, sigma_p^2)       prior network on the context state c
    q(z | c, x)  = N(mu_q, sigma_q^2)       posterior network on c and the encoded reply x
    z            = mu_q + sigma_q * eps     reparameterisation (training)
    loss         = NLL(x | c, z) + beta(step) * KL(q || p)  [+ lambda * BOW(x | c, z)]
                   (with a capacity C: beta(step) * |KL(q || p) - C| instead)

Generation draws z from the prior, so different z give replies that differ in
content, not only in wording; `start` draws one z per row, so a batch of N
copies of one context decodes N replies with N different z.

Against posterior collapse (the decoder learning to ignore z):
- KL annealing: beta rises from 0 to 1 linearly over `kl_anneal_steps`
  (Bowman et al. 2016), or in `kl_cycles` cycles of that length that rise
  during the first `kl_cycle_ratio` of each (Fu et al. 2019, "Cyclical
  Annealing Schedule");
- word dropout: decoder input tokens become <unk> with probability
  `word_dropout` (Bowman et al. 2016), so the decoder must lean on z;
- a bag-of-words loss: predict the reply's words, order-free, from [c; z]
  (Zhao et al. 2017, "Learning Discourse-level Diversity ...", section 3.2);
- a KL capacity (`kl_target` C > 0): the KL term becomes beta * |KL - C|
  (Burgess et al. 2018, "Understanding disentangling in beta-VAE", section 5),
  which holds the KL near C nats per reply: enough for z to matter, while the
  bound (NLL + KL) stays close to HRED's perplexity. Word dropout and the BOW
  loss instead push the KL up without a ceiling (11.8 nats per reply on
  DailyDialog, bound +50% over HRED; bench/RESULTS.md).
All of these act in training only. The model counts its own training steps (the
`kl_step` buffer, saved with the weights), so a resumed run continues the
schedule where it stopped.

In evaluation the loss is the negative evidence lower bound (beta = 1, one z
from the posterior drawn with a fixed seed), so exp(loss / tokens) is an upper
bound on the perplexity, not the perplexity itself. `LossResult.extra` holds
the summed KL and the number of replies (`kl_total`, `replies`; sums, because
evaluation adds extras over batches): KL per reply = kl_total / replies.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from seqtool.config import ChatModelConfig
from seqtool.data.tokenizer import BOS, EOS, PAD, UNK
from seqtool.models.base import LossResult
from seqtool.models.hred import HRED


def kl_weight(step: int, schedule: str, steps: int, cycles: int = 4, ratio: float = 0.5
              ) -> float:
    """beta at training step `step` (0-based) for the schedule "none", "linear" or
    "cyclical"."""
    if schedule == "none":
        return 1.0
    if schedule == "linear":
        return min(1.0, step / steps)
    if schedule == "cyclical":
        if step >= cycles * steps:
            return 1.0
        return min(1.0, (step % steps) / steps / ratio)
    raise ValueError(f"unknown KL schedule {schedule!r}; valid: none, linear, cyclical")


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) of diagonal Gaussians (B, Z) -> (B,) in nats."""
    return 0.5 * (logvar_p - logvar_q
                  + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1).sum(-1)


class GaussianNet(nn.Module):
    """A one-hidden-layer tanh network -> (mu, log variance), as Serban et al.'s
    prior and posterior networks."""

    def __init__(self, inputs: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.hidden(x)
        return self.mu(h), self.logvar(h)  # (B, Z) each


class VHRED(HRED):
    kind = "chat"
    has_latent = True

    def __init__(self, cfg: ChatModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size, latent=cfg.latent_dim)
        ctx, z = self.context_size, cfg.latent_dim
        self.prior = GaussianNet(ctx, ctx, z)
        self.posterior = GaussianNet(ctx + self.encoder.output_size, ctx, z)
        self.bow = (nn.Sequential(nn.Linear(ctx + z, ctx), nn.Tanh(), nn.Linear(ctx, vocab_size))
                    if cfg.bow_weight > 0 else None)
        self.kl_step: Tensor
        self.register_buffer("kl_step", torch.zeros(1, dtype=torch.long))  # training steps

    def architecture(self) -> str:
        m = self.cfg
        return (f"VHRED, context RNN {m.ctx_hidden} over {m.context_turns} utterances, "
                f"latent z {m.latent_dim} (KL annealing {m.kl_anneal}, word dropout "
                f"{m.word_dropout}, bag-of-words weight {m.bow_weight})")

    def kl_beta(self) -> float:
        c = self.cfg
        return kl_weight(int(self.kl_step), c.kl_anneal, c.kl_anneal_steps, c.kl_cycles,
                         c.kl_cycle_ratio)

    # --- the latent variable -----------------------------------------------------------
    def latent(self, context: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Any]:
        """z from the prior, one draw per row (or batch["z"] when given)."""
        mu, logvar = self.prior(context)  # (B, Z)
        z = batch.get("z")
        if z is None:
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return z, (mu, logvar)

    def posterior_of(self, context: Tensor, tgt: Tensor) -> tuple[Tensor, Tensor]:
        reply = self.encode_utterances(tgt, (tgt != PAD).sum(0)).final  # (B, K)
        return self.posterior(torch.cat([context, reply], dim=1))

    @torch.no_grad()
    def kl_per_reply(self, batch: dict[str, Tensor]) -> Tensor:
        """KL(q(z | c, x) || p(z | c)) of each reply (B,), without decoding."""
        context, _, _ = self.encode_context(batch)
        return gaussian_kl(*self.posterior_of(context, batch["tgt"]), *self.prior(context))

    # --- training -------------------------------------------------------------------
    def decoder_input(self, tgt: Tensor) -> Tensor:
        x = super().decoder_input(tgt)  # (T, B)
        p = self.cfg.word_dropout
        if self.training and p > 0:
            hit = (torch.rand(x.shape, device=x.device) < p) & (x != PAD) & (x != BOS)
            x = x.masked_fill(hit, UNK)
        return x

    def bow_nll(self, context: Tensor, z: Tensor, tgt: Tensor) -> Tensor:
        """-sum log p_bow(w | c, z) over the reply's words (EOS and padding left out)."""
        assert self.bow is not None
        lp = torch.log_softmax(self.bow(torch.cat([context, z], 1)).float(), dim=-1)  # (B, V)
        words = (tgt != PAD) & (tgt != EOS)  # (T, B)
        return -(lp.gather(1, tgt.t()) * words.t()).sum()

    def kl_penalty(self, kl: Tensor) -> Tensor:
        """The training KL term for the replies' KLs (B,): their sum, or with a
        capacity C (`kl_target`) B * |mean KL - C|: below C it pays the model to put
        information into z, above C it costs as much as the plain KL does."""
        c = self.cfg.kl_target
        if c <= 0:
            return kl.sum()
        return (kl.mean() - c).abs() * kl.shape[0]

    def forward(self, batch: dict[str, Tensor], carry: Any = None) -> LossResult:
        context, memory, mask = self.encode_context(batch)
        tgt = batch["tgt"]  # (T, B)
        mu_q, logvar_q = self.posterior_of(context, tgt)
        mu_p, logvar_p = self.prior(context)
        if self.training:
            eps = torch.randn_like(mu_q)
        else:  # a fixed draw: the bound is the same at every evaluation
            gen = torch.Generator(device=mu_q.device).manual_seed(0)
            eps = torch.randn(mu_q.shape, generator=gen, device=mu_q.device, dtype=mu_q.dtype)
        z = mu_q + (0.5 * logvar_q).exp() * eps  # (B, Z)
        kl = gaussian_kl(mu_q.float(), logvar_q.float(), mu_p.float(), logvar_p.float())  # (B,)
        state = self.initial_state(context, z, memory, mask)
        total = self.reply_nll(state, tgt)
        if self.training:
            total = total + self.kl_beta() * self.kl_penalty(kl)
            if self.bow is not None:
                total = total + self.cfg.bow_weight * self.bow_nll(context, z, tgt)
            self.kl_step += 1
        else:
            total = total + kl.sum()
        return LossResult(total, int((tgt != PAD).sum()),
                          extra={"kl_total": float(kl.detach().sum()),
                                 "replies": float(tgt.shape[1])})
