"""Token choice for a whole batch in a few device ops: greedy is an argmax over the batch;
temperature + nucleus sampling is the Gumbel-max trick with counter-based noise.

Counter-based: the uniform noise of vocabulary entry v for a sequence's d-th draw is a hash of
(seed, d, v), computed on the device. So a sequence draws the same tokens whatever batch it
shares, on every machine and every tensor-parallel rank, and no generator state is kept. d counts
every draw of the sequence and is never rolled back, so a resampled (backtracked) step draws
fresh noise. argmax(logits / T + Gumbel) is an exact sample of softmax(logits / T).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MASK32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Choice:
    """Per row: the chosen token, and the greedy token with its probability (probes need it)."""

    tokens: torch.Tensor  # [B] long
    greedy: torch.Tensor  # [B] long
    greedy_log_prob: torch.Tensor | None  # [B] float, when asked for


def choose(logits: torch.Tensor, *, temperatures: list[float] | None = None, top_ps: list[float] | None = None,
           seeds: list[int] | None = None, draws: list[int] | None = None, with_log_prob: bool = False) -> Choice:
    """logits [B, V]. temperatures None = every row greedy; else per row (0 = greedy), with
    top_ps, seeds and draws per row for the sampled ones."""
    logits = logits.float()
    greedy = logits.argmax(-1)
    log_prob = None
    if with_log_prob:
        log_prob = logits.gather(1, greedy.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, -1)
    if temperatures is None or not any(t > 0 for t in temperatures):
        return Choice(greedy, greedy, log_prob)
    device = logits.device
    temp = torch.tensor(temperatures, dtype=torch.float32, device=device)
    scaled = logits / temp.clamp(min=1e-6).unsqueeze(1)
    if top_ps is not None and any(p < 1.0 for p in top_ps):
        scaled = _nucleus(scaled, torch.tensor(top_ps, dtype=torch.float32, device=device))
    noise = gumbel(torch.tensor(seeds, dtype=torch.long, device=device),
                   torch.tensor(draws, dtype=torch.long, device=device), logits.shape[1])
    sampled = (scaled + noise).argmax(-1)
    return Choice(torch.where(temp > 0, sampled, greedy), greedy, log_prob)


def _nucleus(scaled: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """-inf outside each row's smallest set of most likely tokens whose mass reaches top_p."""
    probs = torch.softmax(scaled, -1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    drop_sorted = mass_before >= top_p.unsqueeze(1)
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
    return scaled.masked_fill(drop, float("-inf"))


def gumbel(seeds: torch.Tensor, draws: torch.Tensor, vocab: int) -> torch.Tensor:
    """[B, vocab] standard Gumbel noise from hash(seed, draw, v); float32."""
    key = _hash32(_hash32(seeds & MASK32) ^ _hash32((seeds >> 32) & MASK32) ^ _hash32(draws & MASK32))
    v = torch.arange(vocab, dtype=torch.long, device=seeds.device)
    bits = _hash32(_hash32(key.unsqueeze(1) ^ v.unsqueeze(0)) ^ key.unsqueeze(1))
    uniform = ((bits >> 8).double() + 0.5) / float(1 << 24)  # 24 random bits, never 0 or 1
    return (-torch.log(-torch.log(uniform))).float()


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (lowbias32) on int64 tensors holding 32-bit values. The products are
    split into 16-bit halves so no intermediate leaves int64's range."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    low = (x * (m & 0xFFFF)) & MASK32
    high = ((x * (m >> 16)) & 0xFFFF) << 16
    return (low + high) & MASK32
