"""Cost of guidance itself: the same engine and CoT loop with guidance on (steps committed and
temperatures refreshed, no eviction, no probe) against off. "On" is the model's own guidance, or
`bias` for a model that ships with guidance off (its temperatures then only decide what GSoT
drops): comparing off with off would measure nothing."""
from __future__ import annotations

from quasar_dist.reasoning.config import ReasoningConfig

from .workload import fastest_interleaved


def compare_guidance(model, tokenizer, tasks, batch_size: int, max_new_tokens: int) -> dict:
    guided = "bias" if model.config.guidance == "off" else model.config.guidance
    configs = {name: ReasoningConfig(mode="cot", guidance=guidance, max_new_tokens=max_new_tokens, max_batch_size=batch_size)
               for name, guidance in (("off", "off"), ("on", guided))}
    runs = fastest_interleaved(model, tokenizer, tasks, configs)
    off, on = runs["off"].tokens_per_s, runs["on"].tokens_per_s
    return {"tokens_per_s_off": off, "tokens_per_s_on": on, "overhead": 1.0 - on / off, "guidance_on": guided}
