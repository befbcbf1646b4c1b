"""Cost of guidance itself: the same engine and CoT loop with guidance on (bias, steps
committed and temperatures refreshed, no eviction, no probe) against off."""
from __future__ import annotations

from quasar_dist.reasoning.config import ReasoningConfig

from .workload import fastest_interleaved


def compare_guidance(model, tokenizer, tasks, batch_size: int, max_new_tokens: int) -> dict:
    configs = {name: ReasoningConfig(mode="cot", guidance=guidance, max_new_tokens=max_new_tokens, max_batch_size=batch_size)
               for name, guidance in (("off", "off"), ("on", model.config.guidance))}
    runs = fastest_interleaved(model, tokenizer, tasks, configs)
    off, on = runs["off"].tokens_per_s, runs["on"].tokens_per_s
    return {"tokens_per_s_off": off, "tokens_per_s_on": on, "overhead": 1.0 - on / off}
