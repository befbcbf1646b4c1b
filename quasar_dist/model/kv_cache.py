"""The per-replica cache: keys, values and temperature projections, allocated once.

Layout (head-major, so one slot's keys of one head are contiguous and a decode reads a
contiguous range of slots as views, no copies; docs/engine.md has the measurement):
  k, v     [layers, slots + 1, kv_heads, max_len, head_dim]   RoPE already applied to k
  ah       [layers, slots + 1, max_len, ttm_dim]               A h_i, the cached temperature projection
  log_tau  [layers, slots + 1, max_len]  float32               log temperature; -inf for dead entries
  bc       [layers, slots + 1, context_width]                  [B c ; E c] (2 ttm_dim; with hops [B c ; q_0 .. q_H]) for the slot's current context
  boundary_ctx [layers, slots + 1, BOUNDARY_LOG, 2 ttm_dim]    [B c ; E c] of the boundaries whose heats are not computed yet
                                                               (the engine's deferred heats, engine/step_heats.py)
`max_len` is the entries a slot holds (the engine's `slot_entries`), not a sequence's positions:
those are tracked apart (`positions`, `next_pos`) and may run further when eviction keeps a
slot small (docs/gsot.md "Memory"). The extra last slot is scratch: writes of padding tokens and of rows that only fill a batch go
there, so every write of a forward is one `index_copy_`, and nothing real is touched.

Entries [0, length[slot]) are live, the rest dead. Under `bias` and `scale` guidance every live
entry's log_tau equals TTM(ah, bc) for the slot's current bc and every dead one's is -inf, so
log_tau *is* the attention bias of `bias` guidance: a decode step reads it as a view. With
guidance off attention never reads log_tau (it masks with the lengths, CacheBatch.live_bias),
and the engine runner keeps it lazily: forwards write no read-out, and a reader refreshes the
slot's live entries first (runner.py `lazy_refresh`); dead entries are still -inf. Positions are baked into k by RoPE,
so evicting entries and compacting the rest keeps attention exact for the survivors.

The context c of a slot (ModelConfig.ttm_context) is the layer input of the last token of the
last finished step ("last": `pend_last` holds the newest token's, read at the boundary), or the
mean layer input over all tokens of finished steps ("mean": `ctx_sum / ctx_count`, the tokens of
the step in progress accumulating in `pend_*`). Either way it changes only at the step boundary
(`commit_steps`), never earlier: temperatures stay causal.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .cache_batch import CacheBatch

DEAD = float("-inf")
SCORES = ("max", "mean")
BOUNDARY_LOG = 32
"""Boundaries a slot records before their heats must be computed (engine/step_heats.py): more
than the steps of most tasks (max_steps is 16 by default), so most sequences compute theirs once."""


def combine_layers(log_tau: torch.Tensor, over_layers: str) -> torch.Tensor:
    """[L, ...] log temperatures -> [...]: their max or their mean over layers."""
    if over_layers == "max":
        return log_tau.amax(0)
    if over_layers == "mean":
        return log_tau.mean(0)
    raise ValueError(f"unknown layer combination {over_layers!r} (use one of {', '.join(SCORES)})")


def _first_rows_index(buffer: torch.Tensor, slots: torch.Tensor, count: int) -> torch.Tensor:
    """Flat indices into buffer.view(layers, -1, ...) of each slot's first `count` rows: [S * count]."""
    return (slots.unsqueeze(1) * buffer.shape[2] + torch.arange(count, device=slots.device)).reshape(-1)


def _write_rows(buffer: torch.Tensor, flat: torch.Tensor, values: torch.Tensor) -> None:
    """values [layers, N, ...] into the rows `flat` [N] of buffer.view(layers, -1, ...)."""
    layers, rest = buffer.shape[0], buffer.shape[3:]
    buffer.view(layers, -1, *rest).index_copy_(1, flat, values.reshape(layers, -1, *rest).to(buffer.dtype))


@dataclass(slots=True)
class SlotSnapshot:
    """What `rollback` needs to restore a slot exactly to a step boundary. Taken for many slots
    at once (a batched commit), the tensors are the batch's and `row` says which row is this
    slot's: nothing is sliced unless the snapshot is used (most never are)."""

    length: int
    next_pos: int
    ctx_sum: torch.Tensor  # [layers, d], or [layers, S, d] with row
    ctx_count: float
    bc: torch.Tensor | None  # [layers, r], or [layers, S, r] with row; None: not kept (deferred heats)
    log_tau: torch.Tensor | None  # [layers, length], or [layers, S, T >= length] with row; None: not kept
    row: int | None = None

    def slot_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ctx_sum, bc, log_tau) of this slot alone."""
        if self.row is None:
            return self.ctx_sum, self.bc, self.log_tau
        i = self.row
        log_tau = None if self.log_tau is None else self.log_tau[:, i, : self.length]
        return self.ctx_sum[:, i], None if self.bc is None else self.bc[:, i], log_tau


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
        context_width: int | None = None,
        context: str = "last",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        rows = num_slots + 1  # + the scratch slot
        self.max_len = max_len
        self.num_slots = num_slots
        self.scratch = num_slots
        self.num_kv_heads = num_kv_heads
        self.k = torch.zeros(num_layers, rows, num_kv_heads, max_len, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.ah = torch.zeros(num_layers, rows, max_len, ttm_dim, dtype=dtype, device=device)
        self.log_tau = torch.full((num_layers, rows, max_len), DEAD, dtype=torch.float32, device=device)
        self.bc = torch.zeros(num_layers, rows, context_width or 2 * ttm_dim, dtype=dtype, device=device)
        self.boundary_ctx = torch.zeros(num_layers, rows, BOUNDARY_LOG, 2 * ttm_dim, dtype=dtype, device=device)
        self.context = context
        self.positions = torch.zeros(rows, max_len, dtype=torch.long, device=device)
        self.length = torch.zeros(rows, dtype=torch.long, device=device)
        self.next_pos = torch.zeros(rows, dtype=torch.long, device=device)
        self.ctx_sum = torch.zeros(num_layers, rows, hidden_size, dtype=torch.float32, device=device)
        self.ctx_count = torch.zeros(rows, dtype=torch.float32, device=device)
        self.pend_sum = torch.zeros_like(self.ctx_sum)
        self.pend_count = torch.zeros_like(self.ctx_count)
        self.pend_last = torch.zeros_like(self.ctx_sum)

    @staticmethod
    def bytes_per_slot(model, max_len: int) -> int:
        """What one slot of `model.allocate_cache` takes (k, v, A h, log tau, positions, and its
        boundary log)."""
        cfg = model.config
        attn = model.model.layers[0].self_attn
        width = model.lm_head.weight.element_size()
        per_entry = cfg.num_layers * ((2 * attn.local_kv_heads * cfg.head_dim + cfg.ttm_dim) * width + 4) + 8
        return per_entry * max_len + cfg.num_layers * BOUNDARY_LOG * 2 * cfg.ttm_dim * width

    @property
    def device(self) -> torch.device:
        return self.k.device

    # -- slot lifecycle -------------------------------------------------------------------
    def reset(self, slots: int | list[int]) -> None:
        """Free slots for new sequences (one batched write per buffer; entries become dead)."""
        index = torch.as_tensor([slots] if isinstance(slots, int) else slots, dtype=torch.long, device=self.device)
        for buf in (self.length, self.next_pos, self.ctx_count, self.pend_count):
            buf[index] = 0
        for buf in (self.ctx_sum, self.pend_sum, self.pend_last, self.bc):
            buf[:, index] = 0
        self.log_tau[:, index] = DEAD

    def move(self, src: list[int], dst: list[int], upto: int) -> None:
        """Copy the state of slots src to slots dst (the scheduler compacts the slots in use;
        src and dst disjoint). `upto`: the most live entries of a moved slot; entries past it
        are dead in the source, so of k, v and A h only [0, upto) is copied, and log tau (-inf
        past a slot's length) whole; the small per-slot buffers in one gather and one write each."""
        for s, d in zip(src, dst):  # slot by slot: index_select of a narrowed view is ~100x slower
            self.k[:, d, :, :upto] = self.k[:, s, :, :upto]
            self.v[:, d, :, :upto] = self.v[:, s, :, :upto]
            self.ah[:, d, :upto] = self.ah[:, s, :upto]
        src_index = torch.tensor(src, dtype=torch.long, device=self.device)
        dst_index = torch.tensor(dst, dtype=torch.long, device=self.device)
        for buf in (self.log_tau, self.bc, self.boundary_ctx, self.ctx_sum, self.pend_sum, self.pend_last):
            buf.index_copy_(1, dst_index, buf.index_select(1, src_index))
        for buf in (self.positions, self.length, self.next_pos, self.ctx_count, self.pend_count):
            buf.index_copy_(0, dst_index, buf.index_select(0, src_index))

    # -- used by the model's cached forward ------------------------------------------------
    def write(self, layer: int, batch: CacheBatch, k, v, ah, log_tau, h) -> None:
        """Store the forward's new entries (k/v [B, Hkv, T, D], ah [B, T, r] or None, log_tau
        [B, T] or None, h [B, T, d] the layer inputs for the context sums); padding goes to
        scratch. A batch with `deferred` entries only hands them over (write_kept stores those kept)."""
        if batch.deferred is not None:
            batch.deferred.append((k, v, ah, None if log_tau is None else log_tau.float()))
        else:
            d = k.shape[-1]
            self.k[layer].view(-1, d).index_copy_(0, batch.kv_index, k.reshape(-1, d))
            self.v[layer].view(-1, d).index_copy_(0, batch.kv_index, v.reshape(-1, d))
            if ah is not None:
                self.ah[layer].view(-1, ah.shape[-1]).index_copy_(0, batch.token_index, ah.reshape(-1, ah.shape[-1]))
            if log_tau is not None:
                self.log_tau[layer].view(-1).index_copy_(0, batch.token_index, log_tau.reshape(-1).float())
        if not batch.projections:  # the context feeds the next commit; without temperatures there is none
            return
        if self.context == "last":
            h_last = h[:, -1] if batch.last_index is None else h[torch.arange(h.shape[0], device=h.device), batch.last_index]
            self.pend_last[layer].index_copy_(0, batch.rows, h_last.float())
        else:
            if h.shape[1] == 1:
                h_sum = h[:, 0]
            elif batch.valid is None:
                h_sum = h.sum(1)
            else:  # a masked sum as one matmul: 2.4x faster than multiply-then-sum on a padded prefill
                h_sum = torch.bmm(batch.valid.to(h.dtype).unsqueeze(1), h).squeeze(1)
            self.pend_sum[layer].index_add_(0, batch.rows, h_sum.float())

    def read(self, layer: int, batch: CacheBatch, with_temperatures: bool = True):
        """k, v [B, Hkv, upto, D] and log_tau [B, upto] (None unless with_temperatures) of the
        batch's rows. A slot range (the decode batch) reads views; a list of slots (a forced
        chunk) gathers copies."""
        upto, read = batch.upto, batch.read
        if isinstance(read, slice):
            log_tau = self.log_tau[layer, read, :upto] if with_temperatures else None
            return self.k[layer, read, :, :upto], self.v[layer, read, :, :upto], log_tau
        k = self.k[layer, :, :, :upto].index_select(0, read)  # copies only the entries read
        v = self.v[layer, :, :, :upto].index_select(0, read)
        return k, v, self.log_tau[layer, :, :upto].index_select(0, read) if with_temperatures else None

    def advance(self, batch: CacheBatch) -> None:
        """After all layers wrote: positions of the new entries, new lengths (from the runner's
        mirrors: no arithmetic on the device)."""
        self.positions.view(-1).index_copy_(0, batch.token_index, batch.positions.reshape(-1))
        self.length.index_copy_(0, batch.rows, batch.new_length)
        self.next_pos.index_copy_(0, batch.rows, batch.new_next_pos)
        self.pend_count.index_add_(0, batch.rows, batch.num_new.float())

    # -- step boundary, rollback, eviction (driven by the engine) ---------------------------
    def commit_context(self, slots: torch.Tensor) -> torch.Tensor:
        """Fold the finished steps of `slots` into their contexts; returns c [layers, S, d]."""
        # index_select / index_add_ / index_fill_: a third cheaper here than advanced indexing
        self.ctx_count.index_add_(0, slots, self.pend_count.index_select(0, slots))  # tokens in the context
        self.pend_count.index_fill_(0, slots, 0.0)
        if self.context == "last":
            return self.pend_last.index_select(1, slots)
        self.ctx_sum.index_add_(1, slots, self.pend_sum.index_select(1, slots))
        self.pend_sum.index_fill_(1, slots, 0.0)
        count = self.ctx_count.index_select(0, slots).clamp_(min=1.0)
        return self.ctx_sum.index_select(1, slots).div_(count.unsqueeze(-1))

    @property
    def boundary_rows(self) -> int:
        """Boundaries a slot's log holds (BOUNDARY_LOG when the cache was allocated)."""
        return self.boundary_ctx.shape[2]

    def record_boundaries(self, slots: torch.Tensor, at: torch.Tensor, ctx: torch.Tensor) -> None:
        """Row `at` [S] of each slot's boundary log gets its boundary's [B c ; E c] ctx [layers, S, 2r]."""
        _write_rows(self.boundary_ctx, slots * self.boundary_rows + at, ctx)

    def first_rows(self, buffer: torch.Tensor, slots: torch.Tensor, count: int) -> torch.Tensor:
        """The first `count` rows of each slot in a per-slot buffer [layers, slots + 1, rows, ...]
        (A h: the first entries; boundary_ctx: the logged boundaries): [layers, S, count, ...],
        one gather of whole rows."""
        layers, rest = buffer.shape[0], buffer.shape[3:]
        flat = buffer.view(layers, -1, *rest).index_select(1, _first_rows_index(buffer, slots, count))
        return flat.view(layers, slots.numel(), count, *rest)

    def write_first_rows(self, buffer: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> None:
        """The inverse of `first_rows`: values [layers, S, count, ...] into each slot's first rows."""
        _write_rows(buffer, _first_rows_index(buffer, slots, values.shape[2]), values)

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
        ctx_sum, bc, log_tau = snap.slot_tensors()
        self.length[slot] = snap.length
        self.next_pos[slot] = snap.next_pos
        self.ctx_sum[:, slot] = ctx_sum
        self.ctx_count[slot] = snap.ctx_count
        self.pend_sum[:, slot] = 0
        self.pend_count[slot] = 0
        if bc is not None:  # None: taken where the context was only logged (deferred heats)
            self.bc[:, slot] = bc
        if log_tau is not None:  # None: the snapshot kept no temperatures (the runner's lazy refresh)
            self.log_tau[:, slot, : snap.length] = log_tau
        self.log_tau[:, slot, snap.length :] = DEAD

    def token_temperature(self, slot: int) -> torch.Tensor:
        """Mean temperature over layers of each live entry: [length]."""
        n = int(self.length[slot])
        return self.log_tau[:, slot, :n].exp().mean(0)

    def keep_score(self, slot: int, over_layers: str = "max") -> torch.Tensor:
        """Each live entry's temperature over layers, as budgeted eviction ranks it (one
        decision for every layer): the max (an entry some layer still wants stays warm) or the
        geometric mean ("mean": the mean log temperature). [length]."""
        n = int(self.length[slot])
        return combine_layers(self.log_tau[:, slot, :n], over_layers).exp()

    def write_kept(self, deferred: list, rows: torch.Tensor, order: torch.Tensor, keep: torch.Tensor) -> None:
        """The first len(deferred) layers of fresh prompts, held back by the forward (per layer
        k, v [B, Hkv, T, D], A h [B, T, r], log tau [B, T]): row b stores its token order[b, i]
        at entry i (i < keep[b]; the rest of the [B, T'] order is padding, written dead). The
        dropped tokens never reach the cache, so a slot needs entries for the kept ones only
        (ReasoningConfig.kv_slot_entries). One gather and one write per buffer and layer."""
        b, t2 = order.shape
        dead = torch.arange(t2, device=order.device)[None, :] >= keep[:, None]  # [B, T'] padding
        by_token = order.unsqueeze(-1)  # [B, T', 1]
        for layer, (k, v, ah, log_tau) in enumerate(deferred):
            pick = order.view(b, 1, t2, 1).expand(b, k.shape[1], t2, k.shape[-1])
            self.k[layer, rows, :, :t2] = k.gather(2, pick)
            self.v[layer, rows, :, :t2] = v.gather(2, pick)
            self.ah[layer, rows, :t2] = ah.gather(1, by_token.expand(b, t2, ah.shape[-1]))
            if log_tau is not None:  # None: no read-out (guidance off; readers refresh first)
                self.log_tau[layer, rows, :t2] = log_tau.gather(1, order).masked_fill(dead, DEAD)

    def evict(self, slot: int, keep: torch.Tensor) -> int:
        """Compact the live entries of `slot` to those where `keep` [length] is True, in every
        layer; evicted entries are no longer attended at all. Returns how many were evicted."""
        n = int(self.length[slot])
        idx = keep[:n].nonzero().squeeze(1)
        m = idx.numel()
        self.k[:, slot, :, :m] = self.k[:, slot, :, idx]
        self.v[:, slot, :, :m] = self.v[:, slot, :, idx]
        self.ah[:, slot, :m] = self.ah[:, slot, idx]
        self.log_tau[:, slot, :m] = self.log_tau[:, slot, idx]
        self.log_tau[:, slot, m:n] = DEAD
        self.positions[slot, :m] = self.positions[slot, idx]
        self.length[slot] = m
        return n - m
