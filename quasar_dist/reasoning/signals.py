"""What GSoT reads from temperatures at a step boundary: step heat, which entries to evict,
and how much the temperatures moved since the last step. Pure functions on CPU tensors:
positions [n] (sorted, unique per live entry) and tau [n] (mean over layers)."""
from __future__ import annotations

import math

import torch


def step_heat(positions: torch.Tensor, tau: torch.Tensor, step_start: int) -> float:
    """Mean temperature of the step's tokens (positions >= step_start), after the commit that
    folded the step into the context. A step is never evicted before it is scored."""
    in_step = positions >= step_start
    return float(tau[in_step].mean()) if bool(in_step.any()) else float("nan")


def keep_mask(tau: torch.Tensor, evict_below: float, sink_tokens: int, recent_tokens: int) -> torch.Tensor:
    """True for entries that stay: warm enough, or among the first sink_tokens / last
    recent_tokens live entries (Algorithm 1 with StreamingLLM's sink + window protection)."""
    n = tau.numel()
    index = torch.arange(n)
    protected = (index < sink_tokens) | (index >= n - recent_tokens)
    return protected | (tau >= evict_below)


def budget_keep_mask(tau: torch.Tensor, budget: float, sink_tokens: int, recent_tokens: int) -> torch.Tensor:
    """True for the entries that stay under a budget: the protected ones (as in keep_mask) and
    the warmest others, `budget` entries in all (a share of tau's entries if <= 1, a count if
    > 1; never fewer than the protected ones)."""
    n = tau.numel()
    keep = keep_mask(tau, float("inf"), sink_tokens, recent_tokens)  # the protected entries only
    extra = budget_count(n, budget, sink_tokens, recent_tokens) - int(keep.sum())
    if extra > 0:
        free = (~keep).nonzero().squeeze(1)
        warmest = tau[free].topk(min(extra, free.numel())).indices
        keep[free[warmest]] = True
    return keep


def budget_count(n: int, budget: float, sink_tokens: int, recent_tokens: int) -> int:
    """Entries a budget keeps of n: a share (<= 1, rounded up) or a count (> 1), never fewer
    than the protected ones (the last entry always among them) nor more than n."""
    total = math.ceil(budget * n) if budget <= 1 else int(budget)
    protected = min(n, sink_tokens + max(1, recent_tokens))
    return min(n, max(total, protected))


def max_temperature_change(previous: tuple[torch.Tensor, torch.Tensor], current: tuple[torch.Tensor, torch.Tensor]) -> float:
    """max |tau_s - tau_{s-1}| over entries live at both boundaries (inf when none are)."""
    prev_pos, prev_tau = previous
    cur_pos, cur_tau = current
    in_prev = torch.isin(cur_pos, prev_pos)  # both sorted: matching entries line up in order
    in_cur = torch.isin(prev_pos, cur_pos)
    if not bool(in_prev.any()):
        return float("inf")
    return float((cur_tau[in_prev] - prev_tau[in_cur]).abs().max())
