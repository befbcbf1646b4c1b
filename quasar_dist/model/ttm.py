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

Chain context (ModelConfig.ttm_hops = H > 0; docs/model.md "Chain context"): one query cannot know what
a chain of lookups needs ("does X hold?" names X; the rule X -> Y makes Y needed, then Y's rule,
...). So the context becomes H + 1 queries, read from the step's own entries the way a memory
network reads its memory: q_0 = unit(E c), then q_j = unit(G (sum_i p_i A h_i) + gamma q_{j-1})
with p = softmax_i(beta k_i . q_{j-1}) over the entries before the step (k_i = unit(A h_i)), and
the bilinear term becomes  s * max_j k_i . q_j. The context then is [B c ; q_0 ; ... ; q_H]
((H + 2) r wide, as [B c ; E c] is 2 r). With nothing before the step (c_0 = 0) every q_j is 0.
s > 0 (MATCH_UNIT), so a fresh TTM with hops is *not* the identity (a TTM without hops is). Hops read only entries before
the step, so temperatures stay causal; the engine reads them from the cached A h (ttm_hops.py).

The weights are plain Parameters used through `F.linear`, not `nn.Linear` modules: DeepSpeed
AutoTP shards every `nn.Linear` inside a decoder layer, and temperatures must stay replicated.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fused import attribute
from .ttm_hops import dense_chain_context, steps_chain_context, unit


MATCH_UNIT = 8.0
"""The chain match's scale is s = MATCH_UNIT * exp(match_scale): positive, 8 at the start. A
unit query's cosine needs s ~ 8 to move a keep logit; with s itself as a zero-initialised
parameter, it stayed below 4 after 2,000 steps, and went negative in three of four layers
(matching the chain made a token colder; AUROC 0.74; docs/training.md, stage 4)."""


class TokenTemperature(nn.Module):
    def __init__(self, hidden_size: int, ttm_dim: int, tau_max: float, hops: int = 0) -> None:
        super().__init__()
        self.tau_max = tau_max
        self.hops = hops
        self.A = nn.Parameter(torch.empty(ttm_dim, hidden_size))  # token projection
        self.B = nn.Parameter(torch.empty(ttm_dim, hidden_size))  # context projection (additive)
        self.E = nn.Parameter(torch.zeros(ttm_dim, hidden_size))  # context projection (bilinear)
        self.w = nn.Parameter(torch.zeros(ttm_dim))
        self.b = nn.Parameter(torch.zeros(1))
        if hops:  # chain context (module docstring); absent otherwise, so old checkpoints load as they were
            self.G = nn.Parameter(torch.empty(ttm_dim, ttm_dim))  # a matched entry -> the next query
            self.hop_keep = nn.Parameter(torch.zeros(1))  # gamma: the previous query's share
            self.hop_sharpness = nn.Parameter(torch.zeros(1))  # beta = 4 + 4 exp(.)
            self.match_scale = nn.Parameter(torch.zeros(1))  # log(s / MATCH_UNIT)
        self._readout_key = None
        self._readout_weights = None
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Identity initialisation: random projections, zero read-outs, so tau == 1 (without
        hops; with them the match scale starts positive, MATCH_UNIT)."""
        with torch.no_grad():
            self.A.normal_(0.0, 0.02, generator=generator)
            self.B.normal_(0.0, 0.02, generator=generator)
            self.E.zero_()
            self.w.zero_()
            self.b.zero_()
            if self.hops:  # E random: a unit query of E c needs E c != 0. Not the identity: s > 0
                self.E.normal_(0.0, 0.02, generator=generator)
                self.G.normal_(0.0, 0.05, generator=generator)
                for p in (self.hop_keep, self.hop_sharpness, self.match_scale):
                    p.zero_()

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """A h: [..., d] -> [..., r]; cached per token."""
        return F.linear(h, self.A)

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """[B c ; E c]: [..., d] -> [..., 2r]; recomputed once per step."""
        return F.linear(c, torch.cat([self.B, self.E]))

    def hop_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G [r, r], gamma [1], beta [1]) of the chain context."""
        return self.G, self.hop_keep, 4.0 + 4.0 * self.hop_sharpness.exp()

    def match_weight(self) -> torch.Tensor:
        """s [1], the chain match's scale: MATCH_UNIT * exp(match_scale) (positive)."""
        return self.match_scale.exp() * MATCH_UNIT

    def chain_context(self, ctx: torch.Tensor, ah: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Training / full forward: [B c ; E c] [B, S, 2r] -> the context with the hops' queries
        ([B, S, (H + 2) r]) over ah [B, T, r], key t visible to step s where visible [B, S, T]."""
        if not self.hops:
            return ctx
        return dense_chain_context(ctx, ah, visible, *self.hop_weights(), self.hops)

    def keep_logit(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """z with tau = tau_max * sigmoid(z), from A h [..., r] and the context [..., (2 + H) r]
        ([B c ; E c], or [B c ; q_0 .. q_H] with hops; broadcast)."""
        r = ah.shape[-1]
        bc = ctx[..., :r]
        z = F.linear(torch.tanh(ah + bc), self.w.unsqueeze(0), self.b).squeeze(-1)
        if self.hops:
            return z + self.match_weight() * best_match(ah, ctx[..., r:])
        return z + (ah * ctx[..., r:]).sum(-1)  # with E = 0 this adds exact zeros: old checkpoints unchanged

    def log_temperature(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """log tau from A h and the step's context projections (broadcast): [..., r] -> [...].
        Log space keeps bias mode finite. Differentiable (training); inference uses `readout`."""
        return math.log(self.tau_max) + F.logsigmoid(self.keep_logit(ah, ctx))

    def readout(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """The same log tau without autograd, in the few in-place passes of `readout` (the
        per-token read-out of every cached forward)."""
        w2, const = self.readout_weights()
        scale = self.match_weight().detach() if self.hops else None
        return readout(ah, ctx, w2, const, math.log(self.tau_max), scale)

    def readout_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(2w [r], b - sum(w) [1]): the weights `readout` takes. A cache, rebuilt when w or b is
        replaced or changed in place (an optimizer step)."""
        key = (self.w.data_ptr(), self.w._version, self.b.data_ptr(), self.b._version)
        if key != self._readout_key:
            with torch.no_grad():
                self._readout_weights = (2.0 * self.w, self.b - self.w.sum())  # 2w: exact
            self._readout_key = key
        return self._readout_weights


def best_match(ah: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """max_j unit(A h) . q_j: A h [..., r] against the flat queries [..., (H + 1) r] (broadcast).
    Where one set of queries serves a row of entries (queries [..., 1, W], ah [..., T, r]: a
    boundary's refresh) it is one batched matmul, with no [..., T, H + 1, r] temporary."""
    r = ah.shape[-1]
    q = queries.unflatten(-1, (queries.shape[-1] // r, r))  # [..., H + 1, r]
    if ah.dim() >= 2 and q.dim() == ah.dim() + 1 and q.shape[-3] == 1 and ah.shape[-2] > 1 and q.shape[:-3] == ah.shape[:-2]:
        return torch.matmul(unit(ah), q.squeeze(-3).transpose(-1, -2)).amax(-1)
    return (unit(ah).unsqueeze(-2) * q).sum(-1).amax(-1)


def readout(ah: torch.Tensor, ctx: torch.Tensor, w2: torch.Tensor, const: torch.Tensor, log_tau_max: float,
            match_scale: torch.Tensor | None = None, match: torch.Tensor | None = None) -> torch.Tensor:
    """log tau from A h [..., r] and [B c ; E c] [..., 2r] (broadcastable to it), with the
    read-out weights 2w [..., r] and b - sum(w) [...] broadcastable to the result. The formula of
    `TokenTemperature.log_temperature`, in a few in-place passes over one buffer, with tanh
    written as 2 sigmoid(2x) - 1 (the same function; on CPU torch's sigmoid is ~3.5x faster than
    its tanh, and this runs for every new token of every layer and, at a boundary, for every
    live entry):  z = w . tanh(x) + b = (2w) . sigmoid(2x) + (b - sum w),  x = A h + B c.
    No autograd. With `match_scale` (hops) the bilinear term is s * best_match over the queries
    [q_0 .. q_H] that follow B c in ctx, or of `match` where the caller computed it (then ctx
    need hold only B c)."""
    r = ah.shape[-1]
    bc, rest = ctx[..., :r], ctx[..., r:]
    x = torch.add(ah, bc).mul_(2.0).sigmoid_()  # doubling is exact
    x.mul_(w2)
    if match_scale is None:
        x.addcmul_(ah, rest)  # + the bilinear term
    z = x.sum(-1).add_(const)
    if match_scale is not None:
        z.add_((best_match(ah, rest) if match is None else match).mul_(match_scale))
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
        ttms = [attribute(layer, "ttm") for layer in self._layers]
        hop_params = ("G", "hop_keep", "hop_sharpness", "match_scale") if ttms[0].hops else ()
        params = [attribute(t, name) for t in ttms for name in ("B", "E", "w", "b") + hop_params]
        key = tuple((p.data_ptr(), p._version) for p in params)
        if key != self._key:
            with torch.no_grad():
                context_weight = torch.stack([torch.cat([t.B, t.E]) for t in ttms])  # [L, 2r, d]
                w2, const = (torch.stack(parts) for parts in zip(*(t.readout_weights() for t in ttms)))
                hops = None
                if hop_params:  # (G [L, r, r], gamma [L], beta [L], s [L])
                    G, keep, beta = (torch.stack(parts) for parts in zip(*(t.hop_weights() for t in ttms)))
                    hops = (G, keep.view(-1), beta.view(-1), torch.stack([t.match_weight() for t in ttms]).view(-1))
            self._stacks = (context_weight, w2, const.view(-1), math.log(ttms[0].tau_max), hops)  # [L, r], [L]
            self._key = key
        return self._stacks

    @property
    def hops(self) -> int:
        return self._layers[0].ttm.hops

    def context(self, c: torch.Tensor) -> torch.Tensor:
        """[B c ; E c] for the first l layers: c [l, S, d] -> [l, S, 2r]."""
        weight = self._weights()[0][: c.shape[0]]
        return torch.bmm(c.to(weight.dtype), weight.transpose(1, 2))

    def steps_chain_context(self, ctx: torch.Tensor, ah: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """Many steps of each row at once, for the first l layers (the engine's deferred heats,
        prefill dropping's scores): [B c ; E c] [l, B, K, 2r] of K boundaries, boundary k of row b
        hopping over the first seen[b, k] entries of ah [l, B, T, r] -> [l, B, K, (H + 2) r];
        without hops, ctx as it is."""
        if not self.hops:
            return ctx
        G, keep, beta, _ = self._weights()[4]
        layers = ctx.shape[0]
        return steps_chain_context(ctx, ah, seen, G[:layers], keep[:layers], beta[:layers], self.hops)

    def owned_log_temperature(self, ah: torch.Tensor, ctx: torch.Tensor, entries: torch.Tensor,
                              owner: torch.Tensor) -> torch.Tensor:
        """log tau [l, M] of M entries, each under its own boundary's context: ah [l, B, T, r],
        ctx [l, B, K, (2 + H) r], entries [M] flat into [B, T], owner [M] flat into [B, K] (the
        deferred heats). Per entry only what the read-out adds to A h is gathered (B c; [B c ; E c]
        without hops); with hops the match against a boundary's queries is one batched matmul
        of each row's entries against all its boundaries' queries, and each entry picks its own
        boundary's (gathering every entry's [(H + 2) r] context instead cost 3x)."""
        _, w2, const, log_tau_max, hops = self._weights()
        layers, b, t, r = ah.shape
        k, width = ctx.shape[2], ctx.shape[3]
        picked = ah.reshape(layers, b * t, r).index_select(1, entries)  # [l, M, r]
        gathered = width if hops is None else r
        own = ctx[..., :gathered].reshape(layers, b * k, gathered).index_select(1, owner)  # [l, M, r or 2r]
        if hops is None:
            return readout(picked, own, w2[:layers].unsqueeze(1), const[:layers].unsqueeze(1), log_tau_max)
        queries = width // r - 1
        q = ctx[..., r:].reshape(layers * b, k * queries, r)
        match = torch.bmm(unit(ah).reshape(layers * b, t, r), q.transpose(1, 2))  # [l B, T, K (H + 1)]
        match = match.view(layers, b * t * k, queries).index_select(1, entries * k + owner % k).amax(-1)  # [l, M]
        return readout(picked, own, w2[:layers].unsqueeze(1), const[:layers].unsqueeze(1), log_tau_max,
                       hops[3][:layers].unsqueeze(1), match=match)

    def log_temperature(self, ah: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """log tau of the first l layers (`readout`): ah [l, ..., r] and the context [l, ..., (2 + H) r]
        broadcastable to it. Returns [l, ...]."""
        _, w2, const, log_tau_max, hops = self._weights()
        layers = ah.shape[0]
        ones = (1,) * (ah.dim() - 2)
        scale = None if hops is None else hops[3][:layers].view(layers, *ones)
        return readout(ah, ctx, w2[:layers].view(layers, *ones, -1), const[:layers].view(layers, *ones), log_tau_max,
                       scale)
