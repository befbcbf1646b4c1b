"""Token temperature mechanism (TTM), one per decoder layer.

    tau_i = tau_max * sigmoid(w . tanh(A h_i + B c) + (A h_i) . (E c) + b)

h_i is the layer's (normalised) input for token i, c the causal context vector of the current
reasoning step (ModelConfig.ttm_context: the layer input of the last token before the step, or
the mean layer input of all tokens before it). The additive term is the paper's; the bilinear
term (A h_i) . (E c) lets the context *match* tokens, the way a query matches keys, which is what
"relevant to the question" needs (docs/model.md). `A h_i` depends on the token only and is cached
with its keys and values: that is the temperature cache. At a step boundary only `[B; E] c` is
recomputed. With w = 0, E = 0 and b = 0, tau = tau_max / 2 = 1 for tau_max = 2, so TTM attached
to a pretrained checkpoint starts as the identity (and a checkpoint written before E existed
loads with E = 0, i.e. exactly its old formula).

The weights are plain Parameters used through `F.linear`, not `nn.Linear` modules: DeepSpeed
AutoTP shards every `nn.Linear` inside a decoder layer, and temperatures must stay replicated.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TokenTemperature(nn.Module):
    def __init__(self, hidden_size: int, ttm_dim: int, tau_max: float) -> None:
        super().__init__()
        self.tau_max = tau_max
        self.A = nn.Parameter(torch.empty(ttm_dim, hidden_size))  # token projection
        self.B = nn.Parameter(torch.empty(ttm_dim, hidden_size))  # context projection (additive)
        self.E = nn.Parameter(torch.zeros(ttm_dim, hidden_size))  # context projection (bilinear)
        self.w = nn.Parameter(torch.zeros(ttm_dim))
        self.b = nn.Parameter(torch.zeros(1))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Identity initialisation: random projections, zero read-outs, so tau == 1."""
        with torch.no_grad():
            self.A.normal_(0.0, 0.02, generator=generator)
            self.B.normal_(0.0, 0.02, generator=generator)
            self.E.zero_()
            self.w.zero_()
            self.b.zero_()

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """A h: [..., d] -> [..., r]; cached per token."""
        return F.linear(h, self.A)

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """[B c ; E c]: [..., d] -> [..., 2r]; recomputed once per step."""
        return F.linear(c, torch.cat([self.B, self.E]))

    def keep_logit(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """z with tau = tau_max * sigmoid(z), from A h [..., r] and [B c ; E c] [..., 2r] (broadcast)."""
        bc, ec = split_context(ctx)
        z = F.linear(torch.tanh(ah + bc), self.w.unsqueeze(0), self.b).squeeze(-1)
        return z + (ah * ec).sum(-1)  # with E = 0 this adds exact zeros: old checkpoints unchanged

    def log_temperature(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """log tau from A h and the step's context projections (broadcast): [..., r] -> [...].
        Log space keeps bias mode finite."""
        return math.log(self.tau_max) + F.logsigmoid(self.keep_logit(ah, ctx))


def split_context(ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B c ; E c] -> (B c, E c)."""
    r = ctx.shape[-1] // 2
    return ctx[..., :r], ctx[..., r:]


def stacked_log_temperature(ttms: list[TokenTemperature], ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """Every layer's log tau in one go (the batched step-boundary refresh): ah [L, ..., r] and the
    context projections [L, ..., 2r] broadcastable to it, layer l through ttms[l]. Returns
    [L, ...]. Same formula as `log_temperature`, with the layers' weights stacked so the cost is
    a few ops, not a few per layer."""
    w = torch.stack([t.w for t in ttms])  # [L, r]
    b = torch.stack([t.b for t in ttms])  # [L, 1]
    layers = len(ttms)
    bc, ec = split_context(ctx)
    z = torch.tanh(ah + bc) @ w.view(layers, *(1,) * (ah.dim() - 3), -1, 1)  # [L, ..., 1]
    z = z.squeeze(-1) + b.view(layers, *(1,) * (ah.dim() - 2)) + (ah * ec).sum(-1)
    return math.log(ttms[0].tau_max) + F.logsigmoid(z)


def stacked_context(ttms: list[TokenTemperature], c: torch.Tensor) -> torch.Tensor:
    """[B c ; E c] for every layer: c [L, S, d] -> [L, S, 2r]."""
    weights = torch.stack([torch.cat([t.B, t.E]) for t in ttms])  # [L, 2r, d]
    return torch.bmm(c.to(weights.dtype), weights.transpose(1, 2))
