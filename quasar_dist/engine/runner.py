"""Tensors: the one cache of the engine, and the model forwards that read and write it.

The cache is allocated once (`model.allocate_cache`) and reused by every sequence that ever
holds a slot. Everything a caller gets back is on the CPU (logits rows, temperatures), so the
layers above never touch device tensors.
"""
from __future__ import annotations

import torch

from quasar_dist.model.kv_cache import SlotSnapshot


class ModelRunner:
    def __init__(self, model, num_slots: int, max_len: int) -> None:
        self.model = model
        self.cache = model.allocate_cache(num_slots, max_len)
        self.num_layers = model.config.num_layers
        self.device = self.cache.k.device

    @torch.no_grad()
    def forward(self, slots: list[int], token_ids: list[list[int]]) -> torch.Tensor:
        """Append one equal-length chunk per slot (slots may hold different lengths: a prompt,
        a forced probe prefix, or one decoded token each); next-token logits [B, V] on the CPU."""
        ids = torch.tensor(token_ids, dtype=torch.long, device=self.device)  # [B, T]
        slot_index = torch.tensor(slots, dtype=torch.long, device=self.device)
        return self.model.forward_cached(ids, self.cache, slot_index).float().cpu()

    def reset(self, slot: int) -> None:
        self.cache.reset(slot)

    def commit(self, slot: int) -> int:
        """Step boundary: context update + temperature refresh; returns the cache hits."""
        return self.model.commit_step(self.cache, slot)

    def snapshot(self, slot: int) -> SlotSnapshot:
        return self.cache.snapshot(slot)

    def rollback(self, slot: int, snap: SlotSnapshot) -> None:
        self.cache.rollback(slot, snap)

    def temperatures(self, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions [n], mean-over-layers temperature [n]) of the slot's live entries, CPU."""
        n = int(self.cache.length[slot])
        # copies: on the CPU `.cpu()` returns a view into the cache, which later writes and
        # evictions would change under a caller that keeps it (GSoT keeps the last boundary's)
        positions = self.cache.positions[slot, :n].to("cpu", copy=True)
        return positions, self.cache.token_temperature(slot).to("cpu", copy=True)

    @torch.no_grad()
    def evict(self, slot: int, keep: torch.Tensor) -> int:
        """Drop the live entries where keep [n] is False; returns how many were dropped."""
        return self.cache.evict(slot, keep.to(self.device))
