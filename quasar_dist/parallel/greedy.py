"""Greedy decoding through the model's cache: the gang's reference workload (deterministic, so
tp=1 and tp=2 must agree token for token), independent of the reasoning engine."""
from __future__ import annotations

import torch

from quasar_dist.model import QuasarForCausalLM


@torch.no_grad()
def greedy_decode(model: QuasarForCausalLM, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Append max_new_tokens argmax tokens to each prompt (EOS is not special here)."""
    device = next(model.parameters()).device
    cache = model.allocate_cache(len(prompts), max(map(len, prompts)) + max_new_tokens)
    # prefill one prompt per slot (prompts differ in length), then decode all slots together
    last = [model.forward_cached(torch.tensor([ids], device=device), cache, torch.tensor([i], device=device))
            for i, ids in enumerate(prompts)]
    next_ids = torch.cat(last).argmax(-1)  # [B]
    slots = torch.arange(len(prompts), device=device)
    generated = [next_ids]
    for _ in range(max_new_tokens - 1):
        next_ids = model.forward_cached(next_ids[:, None], cache, slots).argmax(-1)
        generated.append(next_ids)
    return torch.stack(generated, 1).tolist()
