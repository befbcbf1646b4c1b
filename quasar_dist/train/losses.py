"""Training loss (paper eq. 70): L = L_task + lambda_T * L_anti_collapse + lambda_S * L_sparsity."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def task_loss(logits: torch.Tensor, ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Next-token loss on solution and answer tokens only (never on the prompt)."""
    targets = ids[:, 1:]
    mask = loss_mask[:, :-1]
    return F.cross_entropy(logits[:, :-1][mask], targets[mask])


def visible_temperature_mask(segment_ids: torch.Tensor, ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """[B, S, T]: key j's temperature under step s's context is used iff seg(j) <= s (the key
    is visible to that step's queries) and step s exists in that row."""
    num_segments = int(segment_ids.max()) + 1
    s = torch.arange(num_segments, device=segment_ids.device)[None, :, None]
    real = ids != pad_id
    last = torch.where(real, segment_ids, torch.zeros_like(segment_ids)).max(1).values  # [B]
    return (segment_ids[:, None, :] <= s) & real[:, None, :] & (s <= last[:, None, None])


def temperature_losses(log_taus: list[torch.Tensor], visible: torch.Tensor, tau_max: float):
    """anti-collapse mean((tau/tau_max - 0.5)^2) (the paper's ||T - 0.5||^2 for T in (0, 1))
    and the sparsity budget mean(tau/tau_max), over visible (step, key) pairs of every layer."""
    tau = torch.stack([lt.exp() / tau_max for lt in log_taus])  # [L, B, S, T]
    m = visible.unsqueeze(0).expand_as(tau)
    t = tau[m]
    return ((t - 0.5) ** 2).mean(), t.mean()
