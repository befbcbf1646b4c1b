"""The chain context of the TTM (ModelConfig.ttm_hops; ttm.py has the formula): H hops of
attention over the entries before a step turn its context [B c ; E c] into [B c ; q_0 .. q_H].

Two layouts of the same computation:
  dense_chain_context   training and the full forward: every step s of a [B, T] sequence at
                        once, hopping over the tokens of steps < s (a mask [B, S, T]).
  packed_chain_context  the engine: the live entries of many slots packed into [L, N, r] with
                        the slot (owner) of each, all layers at once, no padding (commit_steps,
                        prefill dropping). No autograd.
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
    """ctx [B, S, 2r] ([B c ; E c] per step), ah [B, T, r], visible [B, S, T] (key t before step
    s) -> [B, S, (H + 2) r]. A step that sees nothing gets zero queries."""
    r = ah.shape[-1]
    keys = unit(ah)
    q = unit(ctx[..., r:])
    queries = [q]
    hidden = torch.finfo(ah.dtype).min  # finite: a row with no visible key must not give NaN gradients
    sees_any = visible.any(-1, keepdim=True)
    for _ in range(hops):
        logits = (beta * q @ keys.transpose(1, 2)).masked_fill(~visible, hidden)  # [B, S, T]
        p = torch.softmax(logits, -1) * sees_any  # a step that sees nothing reads nothing
        q = unit((p @ ah) @ G.T + keep * q)
        queries.append(q)
    return torch.cat([ctx[..., :r]] + queries, -1)


@torch.no_grad()
def packed_chain_context(ctx: torch.Tensor, ah: torch.Tensor, owner: torch.Tensor, G: torch.Tensor,
                         keep: torch.Tensor, beta: torch.Tensor, hops: int) -> torch.Tensor:
    """ctx [L, S, 2r], ah [L, N, r] (the entries before the step, packed), owner [N] (each
    entry's row of S) -> [L, S, (H + 2) r]. G [L, r, r], keep and beta [L]."""
    layers, slots, r = ctx.shape[0], ctx.shape[1], ah.shape[-1]
    keys = unit(ah)
    q = unit(ctx[..., r:])
    queries = [q]
    index = owner.expand(layers, -1)
    for _ in range(hops):
        logits = (keys * q.index_select(1, owner)).sum(-1).mul_(beta[:, None])  # [L, N]
        top = logits.new_full((layers, slots), float("-inf")).scatter_reduce_(1, index, logits, "amax")
        e = (logits - top.gather(1, index)).exp_()
        total = logits.new_zeros(layers, slots).index_add_(1, owner, e)
        read = ah.new_zeros(layers, slots, r).index_add_(1, owner, e.unsqueeze(-1) * ah)
        read /= total.clamp(min=torch.finfo(total.dtype).tiny).unsqueeze(-1)  # a slot with no entry reads 0
        q = unit(torch.baddbmm(keep[:, None, None] * q, read, G.transpose(1, 2)))
        queries.append(q)
    return torch.cat([ctx[..., :r]] + queries, -1)
