"""Cost of guidance itself: the same engine and CoT loop with guidance on (bias, steps
committed and temperatures refreshed, no eviction, no probe) against off."""
from __future__ import annotations

from quasar_dist.reasoning.config import ReasoningConfig

from .workload import run_reasoning


def compare_guidance(model, tokenizer, tasks, batch_size: int, max_new_tokens: int, repeats: int = 3) -> dict:
    def rate(guidance: str) -> float:
        cfg = ReasoningConfig(mode="cot", guidance=guidance, max_new_tokens=max_new_tokens, max_batch_size=batch_size)
        return run_reasoning(model, tokenizer, tasks, cfg).tokens_per_s

    rates = {"off": 0.0, "on": 0.0}
    for _ in range(repeats):  # interleaved, best of `repeats`
        rates["off"] = max(rates["off"], rate("off"))
        rates["on"] = max(rates["on"], rate(model.config.guidance))
    off, on = rates["off"], rates["on"]
    return {"tokens_per_s_off": off, "tokens_per_s_on": on, "overhead": 1.0 - on / off}
