"""Validation accuracy during training: greedy chain-of-thought through the engine."""
from __future__ import annotations

import torch

from quasar_dist.data.answers import answers_match
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.solve import solve_prompts


def greedy_accuracy(model, tokenizer, tasks: list[dict], guidance: str, max_new_tokens: int = 112) -> float:
    """Share of tasks whose greedy chain ends in the reference answer, under `guidance`."""
    cfg = ReasoningConfig(mode="cot", guidance=guidance, max_new_tokens=max_new_tokens, max_batch_size=64)
    return config_accuracy(model, tokenizer, tasks, cfg)


@torch.no_grad()
def config_accuracy(model, tokenizer, tasks: list[dict], cfg: ReasoningConfig) -> float:
    """Share of tasks whose reasoning under `cfg` ends in the reference answer."""
    was_training = model.training
    model.eval()
    try:
        rows = solve_prompts(model, tokenizer, [t["prompt"] for t in tasks], cfg)
    finally:
        model.train(was_training)
    correct = sum(answers_match(r["answer"], t["answer"]) for r, t in zip(rows, tasks))
    return correct / max(1, len(tasks))
