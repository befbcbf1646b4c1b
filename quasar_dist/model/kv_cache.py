"""The per-replica cache: keys, values and temperature projections, allocated once.

Layout (token-major so one slot's entries are contiguous):
  k, v     [layers, slots, max_len, kv_heads, head_dim]   RoPE already applied to k
  ah       [layers, slots, max_len, ttm_dim]               A h_i, the cached temperature projection
  log_tau  [layers, slots, max_len]                        log temperature under the slot's context
  bc       [layers, slots, ttm_dim]                        B c for the slot's current context
Entries [0, length[slot]) are live. Positions are baked into k by RoPE, so evicting entries and
compacting the rest keeps attention exact for the survivors. Invariant: every live entry's
log_tau equals TTM(ah, bc) for the slot's current bc.

The context c of a slot is the mean layer input over all tokens of finished steps
(`ctx_sum / ctx_count`); the tokens of the step in progress accumulate in `pend_*` and join the
context at the step boundary (`commit_step`), never earlier: temperatures stay causal.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(slots=True)
class SlotSnapshot:
    """What `rollback` needs to restore a slot exactly to a step boundary."""

    length: int
    next_pos: int
    ctx_sum: torch.Tensor
    ctx_count: float
    bc: torch.Tensor
    log_tau: torch.Tensor


class TemperatureKVCache:
    def __init__(
        self,
        *,
        num_layers: int,
        num_slots: int,
        max_len: int,
        num_kv_heads: int,
        head_dim: int,
        ttm_dim: int,
        hidden_size: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        shape = (num_layers, num_slots, max_len)
        self.max_len = max_len
        self.num_slots = num_slots
        self.k = torch.zeros(*shape, num_kv_heads, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.ah = torch.zeros(*shape, ttm_dim, dtype=dtype, device=device)
        self.log_tau = torch.zeros(*shape, dtype=torch.float32, device=device)
        self.bc = torch.zeros(num_layers, num_slots, ttm_dim, dtype=dtype, device=device)
        self.positions = torch.zeros(num_slots, max_len, dtype=torch.long, device=device)
        self.length = torch.zeros(num_slots, dtype=torch.long, device=device)
        self.next_pos = torch.zeros(num_slots, dtype=torch.long, device=device)
        self.ctx_sum = torch.zeros(num_layers, num_slots, hidden_size, dtype=torch.float32, device=device)
        self.ctx_count = torch.zeros(num_slots, dtype=torch.float32, device=device)
        self.pend_sum = torch.zeros_like(self.ctx_sum)
        self.pend_count = torch.zeros_like(self.ctx_count)

    # -- slot lifecycle -------------------------------------------------------------------
    def reset(self, slot: int) -> None:
        """Free a slot for a new sequence (entries are overwritten, not cleared)."""
        self.length[slot] = 0
        self.next_pos[slot] = 0
        self.ctx_sum[:, slot] = 0
        self.ctx_count[slot] = 0
        self.pend_sum[:, slot] = 0
        self.pend_count[slot] = 0
        self.bc[:, slot] = 0

    # -- used by the model's cached forward ------------------------------------------------
    def write(self, layer: int, slots: torch.Tensor, k, v, ah, log_tau, h_sum) -> None:
        """Store T new entries per slot at [length, length + T); k/v [B, Hkv, T, D]."""
        t = k.shape[2]
        idx = self.length[slots, None] + torch.arange(t, device=k.device)  # [B, T]
        rows = slots[:, None]
        self.k[layer, rows, idx] = k.transpose(1, 2)
        self.v[layer, rows, idx] = v.transpose(1, 2)
        self.ah[layer, rows, idx] = ah
        self.log_tau[layer, rows, idx] = log_tau.float()
        self.pend_sum[layer, slots] += h_sum.float()

    def read(self, layer: int, slots: torch.Tensor | slice, upto: int):
        """k, v [B, Hkv, upto, D] and log_tau [B, upto] of the first `upto` entries. A slice
        (consecutive slots, the common case when every slot decodes) reads views, no copies."""
        k = self.k[layer, slots, :upto].transpose(1, 2)
        v = self.v[layer, slots, :upto].transpose(1, 2)
        return k, v, self.log_tau[layer, slots, :upto]

    def advance(self, slots: torch.Tensor, t: int) -> None:
        """After all layers wrote T entries: move lengths and positions on."""
        idx = self.length[slots, None] + torch.arange(t, device=self.length.device)
        self.positions[slots[:, None], idx] = self.next_pos[slots, None] + torch.arange(t, device=idx.device)
        self.length[slots] += t
        self.next_pos[slots] += t
        self.pend_count[slots] += t

    # -- step boundary, rollback, eviction (driven by the engine) ---------------------------
    def commit_context(self, slot: int) -> torch.Tensor:
        """Fold the finished step into the context; returns the new c per layer [layers, d]."""
        self.ctx_sum[:, slot] += self.pend_sum[:, slot]
        self.ctx_count[slot] += self.pend_count[slot]
        self.pend_sum[:, slot] = 0
        self.pend_count[slot] = 0
        return self.ctx_sum[:, slot] / self.ctx_count[slot].clamp(min=1.0)

    def snapshot(self, slot: int) -> SlotSnapshot:
        n = int(self.length[slot])
        return SlotSnapshot(
            length=n,
            next_pos=int(self.next_pos[slot]),
            ctx_sum=self.ctx_sum[:, slot].clone(),
            ctx_count=float(self.ctx_count[slot]),
            bc=self.bc[:, slot].clone(),
            log_tau=self.log_tau[:, slot, :n].clone(),
        )

    def rollback(self, slot: int, snap: SlotSnapshot) -> None:
        """Drop everything after the snapshot (a rejected step or a probe). Entries before it
        were not modified since: eviction happens only at a boundary, before that boundary's
        snapshot is taken, so no snapshot ever predates an eviction it would have to undo."""
        self.length[slot] = snap.length
        self.next_pos[slot] = snap.next_pos
        self.ctx_sum[:, slot] = snap.ctx_sum
        self.ctx_count[slot] = snap.ctx_count
        self.pend_sum[:, slot] = 0
        self.pend_count[slot] = 0
        self.bc[:, slot] = snap.bc
        self.log_tau[:, slot, : snap.length] = snap.log_tau

    def token_temperature(self, slot: int) -> torch.Tensor:
        """Mean temperature over layers of each live entry: [length]."""
        n = int(self.length[slot])
        return self.log_tau[:, slot, :n].exp().mean(0)

    def evict(self, slot: int, keep: torch.Tensor) -> int:
        """Compact the live entries of `slot` to those where `keep` [length] is True, in every
        layer; evicted entries are no longer attended at all. Returns how many were evicted."""
        n = int(self.length[slot])
        idx = keep[:n].nonzero().squeeze(1)
        m = idx.numel()
        for buf in (self.k, self.v, self.ah, self.log_tau):
            buf[:, slot, :m] = buf[:, slot, idx]
        self.positions[slot, :m] = self.positions[slot, idx]
        self.length[slot] = m
        return n - m
