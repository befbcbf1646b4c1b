"""How a prompt's entries are ranked when a KV budget evicts after prefill (ReasoningConfig
kv_evictor). The budget keeps the best-ranked entries (signals.budget_keep_mask); sinks and the
recent window are kept by every method. Baselines of issue #15, all in this engine, all at
one shared decision per entry (every layer and head keeps the same entries):

  ttm        the entries' temperatures, max over layers (an entry any layer wants stays; the
             decision training makes, train/losses.py)
  streaming  StreamingLLM: the most recent entries (with the sinks, that is sinks + window)
  random     a seeded random ranking (per task)
  snapkv     SnapKV: attention the last `window` prompt queries pay each key, summed over layers
             and heads, max-pooled over 7 neighbouring keys
  h2o        H2O's heavy hitters: attention each key receives from every prompt query, summed
  tova       TOVA: attention of the last prompt query, summed over layers and heads

SnapKV, H2O and TOVA decide per head (and H2O/TOVA also during decoding) in their papers; here
they rank once after prefill, like TTM, so that every method is measured at the same budget on
the same entries. Their attention weights come from an eager re-run of the prompt
(model/attention_probe.py), whose cost is not counted in FLOPs: a fused kernel computing them
on the way would cost nothing extra.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from quasar_dist.model.attention_probe import attention_probabilities

EVICTORS = ("ttm", "streaming", "random", "snapkv", "h2o", "tova")
SNAPKV_WINDOW = 8  # observation window: the prompt's last queries
SNAPKV_POOL = 7  # max-pool kernel over neighbouring keys (SnapKV's clustering)


def entry_scores(method: str, model, prompt_ids: list[int], tau: torch.Tensor, seed: int) -> torch.Tensor:
    """A score per live entry (higher = keep), for the entries right after prefill (the prompt);
    tau [n]: the entries' temperatures (what `ttm` ranks by)."""
    n = tau.numel()
    if method == "ttm":
        return tau
    if method == "streaming":
        return torch.arange(n, dtype=torch.float32)
    if method == "random":
        return torch.rand(n, generator=torch.Generator().manual_seed(seed))
    device = next(model.parameters()).device
    _, attention = attention_probabilities(model, torch.tensor([prompt_ids], device=device))  # [L, H, T, T]
    attention = attention.float().cpu()
    if method == "snapkv":
        received = attention[:, :, -SNAPKV_WINDOW:, :].sum((0, 1, 2))
        return F.max_pool1d(received[None, None], SNAPKV_POOL, stride=1, padding=SNAPKV_POOL // 2)[0, 0]
    if method == "h2o":
        return attention.sum((0, 1, 2))
    if method == "tova":
        return attention[:, :, -1, :].sum((0, 1))
    raise ValueError(f"unknown kv_evictor {method!r} (use one of {', '.join(EVICTORS)})")
