"""The chain context of the TTM (ModelConfig.ttm_hops; ttm.py has the formula): H hops of
attention over the entries before a step turn its context [B c ; E c] into [B c ; q_0 .. q_H].

Two layouts of the same computation:
  dense_chain_context   training and the full forward: every step s of a [B, T] sequence at
                        once, hopping over the tokens of steps < s (a mask [B, S, T]).
  steps_chain_context   the engine (the commits, the deferred heats, prefill dropping's
                        scores): K boundaries of each of B slots, all layers, boundary k
                        reading the slot's first seen[b, k] entries: dense's computation as 3-d
                        batched matmuls with the mask an additive bias built once and beta
                        folded into the keys. No autograd.
Tests hold them equal (tests/test_ttm_hops.py).
"""
from __future__ import annotations

import torch


def unit(x: torch.Tensor) -> torch.Tensor:
    """x / |x| over the last dim, as x / sqrt(|x|^2 + eps) (eps 1e-12, or the dtype's smallest
    normal where that is larger): 0 stays 0 with a finite gradient (F.normalize's is NaN at 0,
    and a step with no context has zero queries)."""
    eps = max(1e-12, torch.finfo(x.dtype).tiny)
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps)


def dense_chain_context(ctx: torch.Tensor, ah: torch.Tensor, visible: torch.Tensor, G: torch.Tensor,
                        keep: torch.Tensor, beta: torch.Tensor, hops: int) -> torch.Tensor:
    """ctx [..., S, 2r] ([B c ; E c] per step), ah [..., T, r], visible [..., S, T] (key t
    before step s) -> [..., S, (H + 2) r]. A step that sees nothing gets zero queries. The
    leading dims broadcast: training passes [B] with one layer's G [r, r] and keep, beta [1];
    the test of steps_chain_context passes [L, B] with G [L, 1, r, r] and keep, beta [L, 1, 1, 1]."""
    r = ah.shape[-1]
    keys = unit(ah)
    q = unit(ctx[..., r:])
    queries = [q]
    hidden = torch.finfo(ah.dtype).min  # finite: a row with no visible key must not give NaN gradients
    sees_any = visible.any(-1, keepdim=True)
    for _ in range(hops):
        logits = (beta * q @ keys.transpose(-1, -2)).masked_fill(~visible, hidden)  # [..., S, T]
        p = torch.softmax(logits, -1) * sees_any  # a step that sees nothing reads nothing
        q = unit((p @ ah) @ G.transpose(-1, -2) + keep * q)
        queries.append(q)
    return torch.cat([ctx[..., :r]] + queries, -1)


@torch.no_grad()
def steps_chain_context(ctx: torch.Tensor, ah: torch.Tensor, seen: torch.Tensor, G: torch.Tensor,
                        keep: torch.Tensor, beta: torch.Tensor, hops: int) -> torch.Tensor:
    """ctx [L, B, K, 2r] of K boundaries per slot, ah [L, B, T, r] each slot's first T entries,
    seen [B, K] (boundary k of slot b reads its first seen[b, k] entries) -> [L, B, K, (H + 2) r].
    G [L, r, r], keep and beta [L]. A boundary that sees nothing (seen 0) reads the mean of the
    slot's T entries, not dense_chain_context's 0; in the deferred heats such rows are past a
    slot's log, and nobody reads them (prefill dropping's rows all see their prompt).
    Per hop three batched matmuls and a softmax: 3.9 against dense's 6.9 ms at 4 layers, 20
    slots, 8 steps, 100 entries, 6 hops on this CPU."""
    layers, rows, k = ctx.shape[:3]
    t, r = ah.shape[2], ah.shape[3]
    keys = unit(ah).mul_(beta.view(layers, 1, 1, 1)).view(layers * rows, t, r).transpose(1, 2)  # beta k
    values = ah.reshape(layers * rows, t, r)
    dead = torch.arange(t, device=seen.device)[None, None, :] >= seen[:, :, None]  # [B, K, T]
    bias = ah.new_zeros(rows, k, t).masked_fill_(dead, torch.finfo(ah.dtype).min)
    bias = bias.expand(layers, rows, k, t).reshape(layers * rows, k, t)
    G_t, keep = G.transpose(1, 2), keep.view(layers, 1, 1)
    q = unit(ctx[..., r:]).reshape(layers * rows, k, r)
    queries = [q]
    for _ in range(hops):
        p = torch.softmax(torch.baddbmm(bias, q, keys), -1)  # [L B, K, T]
        read = torch.bmm(p, values).view(layers, rows * k, r)
        q = unit(torch.baddbmm(q.view(layers, rows * k, r) * keep, read, G_t)).view(layers * rows, k, r)
        queries.append(q)
    return torch.cat([ctx[..., :r]] + [x.view(layers, rows, k, r) for x in queries], -1)
