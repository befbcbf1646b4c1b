"""The chain context of the TTM (ModelConfig.ttm_hops; ttm.py has the formula): H hops of
attention over the entries before a step turn its context [B c ; E c] into [B c ; q_0 .. q_H].

Two layouts of the same computation:
  dense_chain_context   training and the full forward: every step s of a [B, T] sequence at
                        once, hopping over the tokens of steps < s (a mask [B, S, T]).
  packed_chain_context  the engine: the live entries of many slots packed into [L, N, r] with
                        the slot (owner) of each, all layers at once (commit_steps, prefill
                        dropping), laid out per slot for batched matmuls. No autograd.
A test holds them equal (tests/test_ttm_hops.py).
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
    the engine's deferred heats pass [L, B] with G [L, 1, r, r] and keep, beta [L, 1, 1, 1]
    (every step's query a row of one matrix product per hop)."""
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
def packed_chain_context(ctx: torch.Tensor, ah: torch.Tensor, owner: torch.Tensor, G: torch.Tensor,
                         keep: torch.Tensor, beta: torch.Tensor, hops: int) -> torch.Tensor:
    """ctx [L, S, 2r], ah [L, N, r] (the entries before the step, packed slot by slot: `owner`
    [N], each entry's row of S, is non-decreasing) -> [L, S, (H + 2) r]. G [L, r, r], keep and
    beta [L]. The entries are laid out once per call as [L, S, longest, r] (dead places masked),
    so that every hop is two batched matmuls and a softmax: on CPU far fewer passes over memory
    than per-entry gathers and scatters (docs/engine.md)."""
    layers, slots, r = ctx.shape[0], ctx.shape[1], ah.shape[-1]
    counts = torch.bincount(owner, minlength=slots)
    longest = int(counts.max()) if owner.numel() else 0
    start = torch.cumsum(counts, 0) - counts
    place = torch.arange(owner.numel(), device=owner.device) - start.index_select(0, owner)
    live = torch.arange(longest, device=owner.device)[None, :] < counts[:, None]  # [S, longest]
    padded = ah.new_zeros(layers, slots, longest, r)
    padded[:, owner, place] = ah
    keys = unit(padded)
    q = unit(ctx[..., r:])
    queries = [q]
    hidden = torch.finfo(ah.dtype).min  # finite: a slot with no entry gets a uniform row, read as 0 below
    sees_any = (counts > 0).to(ah.dtype)[None, :, None]
    for _ in range(hops):
        logits = torch.matmul(keys, q.unsqueeze(-1)).squeeze(-1).mul_(beta[:, None, None])  # [L, S, longest]
        p = torch.softmax(logits.masked_fill_(~live, hidden), -1)
        read = torch.matmul(p.unsqueeze(-2), padded).squeeze(-2) * sees_any  # [L, S, r]
        q = unit(torch.baddbmm(keep[:, None, None] * q, read, G.transpose(1, 2)))
        queries.append(q)
    return torch.cat([ctx[..., :r]] + queries, -1)
