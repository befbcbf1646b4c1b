"""Token choice from one row of logits, on the CPU with the sequence's own generator.

Why the CPU: a torch.Generator must live on the tensor's device, and a CPU generator gives the
same draws on every machine and every tensor-parallel rank. Each sequence draws from its own
generator, one draw per sampled token, so what it samples never depends on which other
sequences share its batch.
"""
from __future__ import annotations

import torch


def greedy_token(logits: torch.Tensor) -> tuple[int, float]:
    """argmax of logits [V] and its probability (softmax at temperature 1)."""
    probs = torch.softmax(logits.float(), dim=-1)
    token = int(torch.argmax(probs))
    return token, float(probs[token])


def sample_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """Greedy when temperature == 0, else temperature + nucleus (top_p) sampling."""
    if temperature == 0:
        return greedy_token(logits)[0]
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        probs = _nucleus(probs, top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches top_p (at least one)."""
    sorted_probs, order = torch.sort(probs, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(0) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return kept / kept.sum()
