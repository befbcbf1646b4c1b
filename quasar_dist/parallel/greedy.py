"""Greedy decoding through the model's cache: the gang's reference workload (deterministic, so
tp=1 and tp=2 must agree token for token), independent of the reasoning engine."""
from __future__ import annotations

import torch

from quasar_dist.engine.runner import ModelRunner
from quasar_dist.model import QuasarForCausalLM


@torch.no_grad()
def greedy_decode(model: QuasarForCausalLM, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Append max_new_tokens argmax tokens to each prompt (EOS is not special here)."""
    runner = ModelRunner(model, len(prompts), max(map(len, prompts)) + max_new_tokens)
    slots = list(range(len(prompts)))
    lengths = [len(p) for p in prompts]
    # every prompt in one padded prefill, then all slots decode together
    next_ids = runner.run("fresh", slots, [list(p) for p in prompts], [0] * len(prompts), [0] * len(prompts)).argmax(-1)
    generated = [next_ids]
    for _ in range(max_new_tokens - 1):
        feeds = [[t] for t in next_ids.tolist()]
        next_ids = runner.run("range", slots, feeds, lengths, lengths).argmax(-1)
        lengths = [n + 1 for n in lengths]
        generated.append(next_ids)
    return torch.stack(generated, 1).tolist()
