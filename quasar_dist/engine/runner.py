"""Tensors: the one cache of the engine, and the model forwards that read and write it.

The cache is allocated once (`model.allocate_cache`) and reused by every sequence that ever
holds a slot. The engine hands the runner plain Python values (slots, token lists, lengths) and
gets back device tensors it reads once per step (`to_host`), so a step costs one host
synchronisation, whatever the batch size.
"""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

from quasar_dist.model.cache_batch import CacheBatch
from quasar_dist.model.kv_cache import SlotSnapshot
from quasar_dist.model.prefill_drop import PrefillDrop

from .sequence import PrefillBudget


class ModelRunner:
    def __init__(self, model, num_slots: int, max_len: int) -> None:
        self.model = model
        self.cache = model.allocate_cache(num_slots, max_len)
        self.num_layers = model.config.num_layers
        self.device = self.cache.device
        self.temperatures = True  # the engine sets it per step (no TTM when nobody needs it)
        self.eager_refresh = False  # True: keep every live entry's temperature current (the reference)

    @property
    def lazy_refresh(self) -> bool:
        """Guidance off: attention never reads temperatures, so forwards store only what a
        temperature is made of (A h, the context), a commit writes none of the temperatures it
        reads out for the heat, and boundaries without backtracking defer their heats
        (step_heats.py); whoever reads a slot's temperatures (`temperatures_of`, `keep_scores_of`)
        first refreshes its live entries, to the values an eager cache would hold
        (kv_cache.py)."""
        return self.model.guidance == "off" and not self.eager_refresh

    @property
    def projections(self) -> bool:
        """Whether forwards store A h and the context: someone commits steps, or guidance reads them."""
        return self.temperatures or self.model.guidance != "off"

    @property
    def computes_temperatures(self) -> bool:
        """Whether forwards read out temperatures into the cache (an eager cache that someone
        reads, or guidance that uses them)."""
        return self.model.guidance != "off" or (self.temperatures and not self.lazy_refresh)

    @torch.no_grad()
    def run(self, kind: str, slots: list[int | None], feeds: list[list[int]], starts: list[int],
            next_pos: list[int]) -> torch.Tensor:
        """One forward of a group (kind: fresh | range | gather, see cache_batch.py); logits
        [B, V] of each row's last real token, on the device."""
        batch = CacheBatch.build(slots=slots, feeds=feeds, starts=starts, next_pos=next_pos, cache=self.cache,
                                 read=kind, temperatures=self.computes_temperatures, projections=self.projections)
        return self.model.forward_cached(batch, self.cache)

    @torch.no_grad()
    def prefill_dropping(self, slots: list[int | None], feeds: list[list[int]],
                         budgets: list[PrefillBudget | None]) -> tuple[torch.Tensor, list[int]]:
        """A fresh group whose prompts keep only part of their entries, decided inside the
        forward (prefill_drop.py); returns the logits and the entries each row kept."""
        batch = CacheBatch.build(slots=slots, feeds=feeds, starts=[0] * len(feeds), next_pos=[0] * len(feeds),
                                 cache=self.cache, read="fresh", temperatures=self.computes_temperatures,
                                 projections=True)
        drop = prefill_drop_of(budgets, feeds)
        return self.model.forward_cached(batch, self.cache, drop=drop), drop.kept

    @torch.no_grad()
    def forward(self, slots: list[int], token_ids: list[list[int]]) -> torch.Tensor:
        """Append one equal-length chunk per slot, whatever they hold; logits [B, V] on the CPU
        (tests and tools; the engine calls `run`)."""
        batch = CacheBatch.append(self.cache, slots, torch.tensor(token_ids), temperatures=self.computes_temperatures,
                                  projections=self.projections)
        return self.model.forward_cached(batch, self.cache).float().cpu()

    @torch.no_grad()
    def move(self, src: list[int], dst: list[int], upto: int) -> None:
        """Sequences change slots (scheduler.compact): their cache rows go with them, in one
        batched copy; `upto` is the most live entries any of them holds."""
        self.cache.move(src, dst, upto)

    def reset(self, slots: list[int]) -> None:
        self.cache.reset(slots)

    @torch.no_grad()
    def commit(self, slots: list[int], lengths: list[int], next_pos: list[int],
               in_step: list[int]) -> tuple[torch.Tensor, list[SlotSnapshot]]:
        """Step boundary of several slots at once: context update + temperature refresh of their
        live entries, each slot's laid out as a row (model.commit_steps). `lengths`: each slot's live entries;
        `next_pos`: its next position; `in_step`: how many of its last entries the step just
        finished fed (nothing is evicted inside a step, so they are the step's tokens). Returns
        each slot's heat [S] on the device (mean temperature over layers and over the step's
        entries) and a snapshot of each slot as it is now (for rollback; views of a few batched
        copies, sliced only if used)."""
        device = self.device
        index = torch.tensor(slots, dtype=torch.long, device=device)
        seen = torch.tensor(lengths, dtype=torch.long, device=device)
        steps = torch.tensor(in_step, dtype=torch.long, device=device)
        log_tau, bc = self.model.commit_steps(self.cache, index, seen, max(lengths), write=not self.lazy_refresh)  # [L, S, T]
        entry = torch.arange(log_tau.shape[-1], device=device)[None, :]
        in_this_step = (entry >= (seen - steps)[:, None]) & (entry < seen[:, None])  # [S, T]
        heats = (log_tau.exp().mean(0) * in_this_step).sum(-1) / steps.clamp(min=1).to(log_tau.dtype)
        if self.lazy_refresh:
            log_tau = None  # a rollback keeps no temperatures: readers refresh
        return heats, self._snapshots(index, lengths, next_pos, bc, log_tau)

    @torch.no_grad()
    def record(self, slots: list[int], lengths: list[int], next_pos: list[int], at: list[int]) -> list[SlotSnapshot]:
        """Step boundary of several slots whose heats come later (step_heats.py): their contexts
        are logged in row `at` of each slot's boundary log. Returns each slot's snapshot (its
        context sums; no temperatures: a reader settles the heats first)."""
        device = self.device
        index = torch.tensor(slots, dtype=torch.long, device=device)
        self.model.record_boundaries(self.cache, index, torch.tensor(at, dtype=torch.long, device=device))
        return self._snapshots(index, lengths, next_pos, None, None)

    def _snapshots(self, index: torch.Tensor, lengths: list[int], next_pos: list[int], bc: torch.Tensor | None,
                   log_tau: torch.Tensor | None) -> list[SlotSnapshot]:
        """Each boundary slot's snapshot: rows of one copy of the context sums and of the
        batch's bc and log tau (None: not kept). ctx_count: at a boundary every fed token has
        joined the context."""
        ctx_sum = self.cache.ctx_sum.index_select(1, index)  # a copy
        return [SlotSnapshot(length=n, next_pos=p, ctx_sum=ctx_sum, ctx_count=float(p), bc=bc, log_tau=log_tau, row=i)
                for i, (n, p) in enumerate(zip(lengths, next_pos))]

    @torch.no_grad()
    def boundary_heats(self, slots: list[int], seen: list[list[int]], in_step: list[list[int]]) -> torch.Tensor:
        """The heats of the boundaries logged for the live `slots`: row b's boundary k saw the
        first seen[b][k] entries, the last in_step[b][k] of which are its step's (0: the
        prompt's boundary, no heat). Returns [B * K] on the device (K the longest log),
        row-major, and sets each slot's bc to its newest boundary's, as the commits would have."""
        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        cache = self.cache
        heats, ctx = self._heats(cache.first_rows(cache.ah, index, max(max(row) for row in seen)),
                                 cache.first_rows(cache.boundary_ctx, index, max(map(len, seen))), seen, in_step)
        newest = torch.tensor([len(row) - 1 for row in seen], dtype=torch.long, device=self.device)
        cache.bc.index_copy_(1, index, ctx[:, torch.arange(len(slots), device=self.device), newest])
        return heats

    @torch.no_grad()
    def copy_boundaries(self, slot: int, entries: int, first: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of what a slot's deferred heats read, so that the slot can be freed first:
        A h of its first `entries` entries [entries, L, r] and its logged boundary contexts
        first..end - 1 [end - first, L, 2r]."""
        cache = self.cache
        return (cache.ah[:, slot, :entries].transpose(0, 1).clone(memory_format=torch.contiguous_format),
                cache.boundary_ctx[:, slot, first:end].transpose(0, 1).clone(memory_format=torch.contiguous_format))

    @torch.no_grad()
    def copied_boundary_heats(self, copies: list[tuple[torch.Tensor, torch.Tensor]], seen: list[list[int]],
                              in_step: list[list[int]]) -> torch.Tensor:
        """`boundary_heats` of freed slots, from their `copy_boundaries` (one per row)."""
        ah = pad_sequence([entries for entries, _ in copies], batch_first=True).permute(2, 0, 1, 3).contiguous()  # [L, B, T, r]
        logged = pad_sequence([ctx for _, ctx in copies], batch_first=True).permute(2, 0, 1, 3).contiguous()  # [L, B, K, 2r]
        return self._heats(ah, logged, seen, in_step)[0]

    def _heats(self, ah: torch.Tensor, logged: torch.Tensor, seen: list[list[int]],
               in_step: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """model.boundary_heats with the host's lists as index tensors (T, K: ah's and logged's rows)."""
        device = self.device
        t, k = ah.shape[2], logged.shape[2]
        seen_t = torch.tensor([row + [0] * (k - len(row)) for row in seen], dtype=torch.long, device=device)
        entries, owner = [], []
        for b, (row, steps) in enumerate(zip(seen, in_step)):
            for j, (n, m) in enumerate(zip(row, steps)):
                entries += range(b * t + n - m, b * t + n)
                owner += [b * k + j] * m
        return self.model.boundary_heats(ah, logged, seen_t, torch.tensor(entries, dtype=torch.long, device=device),
                                         torch.tensor(owner, dtype=torch.long, device=device))

    def snapshot(self, slot: int) -> SlotSnapshot:
        return self.cache.snapshot(slot)

    def rollback(self, slot: int, snap: SlotSnapshot) -> None:
        self.cache.rollback(slot, snap)

    def _fresh(self, slot: int) -> None:
        if self.lazy_refresh:
            self.model.refresh_temperatures(self.cache, slot)

    def keep_scores_of(self, slot: int, over_layers: str = "max") -> torch.Tensor:
        """The slot's live entries' temperature over layers (max or geometric mean), CPU (a copy)."""
        self._fresh(slot)
        return self.cache.keep_score(slot, over_layers).to("cpu", copy=True)

    def temperatures_of(self, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions [n], mean-over-layers temperature [n]) of the slot's live entries, CPU."""
        self._fresh(slot)
        n = int(self.cache.length[slot])
        # copies: on the CPU `.cpu()` returns a view into the cache, which later writes and
        # evictions would change under a caller that keeps it (GSoT keeps the last boundary's)
        positions = self.cache.positions[slot, :n].to("cpu", copy=True)
        return positions, self.cache.token_temperature(slot).to("cpu", copy=True)

    @torch.no_grad()
    def evict(self, slot: int, keep: torch.Tensor) -> int:
        """Drop the live entries where keep [n] is False; returns how many were dropped."""
        return self.cache.evict(slot, keep.to(self.device))


def prefill_drop_of(budgets: list[PrefillBudget | None], feeds: list[list[int]]) -> PrefillDrop:
    """The model's drop for a fresh group: one layer count and rule for the group (the first
    budget's; one run has one config); a row without a budget keeps all of its prompt."""
    first = next(b for b in budgets if b is not None)
    keep = None if first.keep is None else [len(f) if b is None else min(len(f), b.keep) for b, f in zip(budgets, feeds)]
    return PrefillDrop(layers=first.layers, keep=keep, sinks=first.sinks, recent=first.recent,
                       keep_above=first.keep_above, keep_all=[b is None for b in budgets], over_layers=first.over_layers)


def to_host(*tensors: torch.Tensor) -> list[list[float]]:
    """Several small device tensors to Python lists in one transfer (one synchronisation)."""
    if not tensors:
        return []
    sizes = [t.numel() for t in tensors]
    flat = torch.cat([t.reshape(-1).double() for t in tensors]).tolist()
    out, at = [], 0
    for n in sizes:
        out.append(flat[at : at + n])
        at += n
    return out
