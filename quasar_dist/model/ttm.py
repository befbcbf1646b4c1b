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
        self._readout_key = None
        self._readout_weights = None
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
        Log space keeps bias mode finite. Differentiable (training); inference uses `readout`."""
        return math.log(self.tau_max) + F.logsigmoid(self.keep_logit(ah, ctx))

    def readout(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """The same log tau without autograd, in the few in-place passes of `readout` (the
        per-token read-out of every cached forward)."""
        w2, const = self.readout_weights()
        return readout(ah, ctx, w2, const, math.log(self.tau_max))

    def readout_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(2w [r], b - sum(w) [1]): the weights `readout` takes. A cache, rebuilt when w or b is
        replaced or changed in place (an optimizer step)."""
        key = (self.w.data_ptr(), self.w._version, self.b.data_ptr(), self.b._version)
        if key != self._readout_key:
            with torch.no_grad():
                self._readout_weights = (2.0 * self.w, self.b - self.w.sum())  # 2w: exact
            self._readout_key = key
        return self._readout_weights


def split_context(ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B c ; E c] -> (B c, E c)."""
    r = ctx.shape[-1] // 2
    return ctx[..., :r], ctx[..., r:]


def readout(ah: torch.Tensor, ctx: torch.Tensor, w2: torch.Tensor, const: torch.Tensor, log_tau_max: float) -> torch.Tensor:
    """log tau from A h [..., r] and [B c ; E c] [..., 2r] (broadcastable to it), with the
    read-out weights 2w [..., r] and b - sum(w) [...] broadcastable to the result. The formula of
    `TokenTemperature.log_temperature`, in a few in-place passes over one buffer, with tanh
    written as 2 sigmoid(2x) - 1 (the same function; on CPU torch's sigmoid is ~3.5x faster than
    its tanh, and this runs for every new token of every layer and, at a boundary, for every
    live entry):  z = w . tanh(x) + b = (2w) . sigmoid(2x) + (b - sum w),  x = A h + B c.
    No autograd."""
    bc, ec = split_context(ctx)
    x = torch.add(ah, bc).mul_(2.0).sigmoid_()  # doubling is exact
    x.mul_(w2).addcmul_(ah, ec)  # + the bilinear term
    z = x.sum(-1).add_(const)
    return F.logsigmoid(z).add_(log_tau_max)


class StackedTTM:
    """Every layer's TTM as stacked weights, for the batched inference paths (the step-boundary
    refresh, prefill dropping): a handful of ops for all layers, not a handful per layer. The
    stacks are a cache, rebuilt whenever a TTM weight is replaced or changed in place (its
    `_version`), like FusedProjections. `layers` is the decoder's ModuleList (a reference, not a
    closure, so a deep copy of the model stacks the copy's weights). No autograd."""

    def __init__(self, layers: nn.ModuleList) -> None:
        self._layers = layers
        self._key = None
        self._stacks = None

    def _weights(self):
        ttms = [layer.ttm for layer in self._layers]
        params = [p for t in ttms for p in (t.B, t.E, t.w, t.b)]
        key = tuple((p.data_ptr(), p._version) for p in params)
        if key != self._key:
            with torch.no_grad():
                context_weight = torch.stack([torch.cat([t.B, t.E]) for t in ttms])  # [L, 2r, d]
                w2, const = (torch.stack(parts) for parts in zip(*(t.readout_weights() for t in ttms)))
            self._stacks = (context_weight, w2, const.view(-1), math.log(ttms[0].tau_max))  # [L, r], [L]
            self._key = key
        return self._stacks

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """[B c ; E c] for the first l layers: c [l, S, d] -> [l, S, 2r]."""
        weight = self._weights()[0][: c.shape[0]]
        return torch.bmm(c.to(weight.dtype), weight.transpose(1, 2))

    def log_temperature(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """log tau of the first l layers (`readout`): ah [l, ..., r] and the context projections
        [l, ..., 2r] broadcastable to it. Returns [l, ...]."""
        _, w2, const, log_tau_max = self._weights()
        layers = ah.shape[0]
        ones = (1,) * (ah.dim() - 2)
        return readout(ah, ctx, w2[:layers].view(layers, *ones, -1), const[:layers].view(layers, *ones), log_tau_max)
