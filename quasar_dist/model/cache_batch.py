"""What one cached forward needs to know besides the token ids: where each new entry goes, which
entries attention reads, which tokens are real. Built once per forward (a dozen small tensor
ops, whatever the number of layers), then read by every layer: nano-vllm's per-step context.

Three shapes of forward (the runner picks one per group of sequences):
  fresh   prompts of empty slots, right-padded to one length: attention over the chunk itself,
          nothing read from the cache (read is None)
  decode  one token per row for a contiguous range of slots: reads are views (read is a slice);
          slots of the range that have nothing to feed are filler rows (their writes go to the
          scratch slot and their outputs are ignored)
  chunk   equal-length chunks appended to non-empty slots (forced probe prefixes): reads gather
          the slots (read is a LongTensor)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(slots=True)
class CacheBatch:
    input_ids: torch.Tensor
    """[B, T] token ids (0 for padding and filler rows)."""
    rows: torch.Tensor
    """[B] the slot of each row (scratch for filler rows)."""
    positions: torch.Tensor
    """[B, T] RoPE positions of the new tokens."""
    token_index: torch.Tensor
    """[B * T] flat index of each new entry into a [slots * max_len] buffer (scratch for padding)."""
    kv_index: torch.Tensor
    """[B * Hkv * T] flat index into a [slots * Hkv * max_len] buffer, in (row, head, token) order."""
    valid: torch.Tensor | None
    """[B, T] 1.0 for real tokens, 0.0 for padding; None when every real row is full."""
    num_new: torch.Tensor
    """[B] real new tokens per row (0 for filler rows)."""
    new_length: torch.Tensor
    new_next_pos: torch.Tensor
    read: slice | torch.Tensor | None
    """What attention reads: None (fresh: the chunk itself), a slot range, or slots to gather."""
    upto: int
    """Entries read per row (the longest live length after the write)."""
    query_index: torch.Tensor
    """[B, T] cache index of each new token (causality inside a chunk)."""
    last_index: torch.Tensor | None
    """[B] index of each row's last real token (its logits are returned); None = the last."""
    temperatures: bool
    """Read out the new entries' TTM temperatures into log_tau (else log_tau is not written:
    guidance is off, and nobody reads them, or a reader refreshes them first)."""
    projections: bool
    """Store the new entries' A h and the layer inputs the next step's context is made of (the
    temperature cache a boundary commit reads); implied by `temperatures`."""
    signed_sin: torch.Tensor | None = None
    """Set by the model's forward: RoPE terms computed once for every layer."""
    live_bias: torch.Tensor | None = None
    """Set by the model's forward for a batch that reads the cache: [B, upto] 0 for each row's
    live entries, -inf past its length (the attention mask of every guidance but `bias`, whose
    mask is log_tau itself), built once for all layers."""
    live_length: torch.Tensor | None = None
    """Set before live_bias, which is built from it: [B] each row's live entries after the write
    (at least 1), also the decode-attention kernel's bound (cpu_kernels.py)."""
    deferred: list | None = None
    """Set by a forward that drops prompt tokens (prefill_drop.py): the first layers' new
    entries (k, v, A h, log tau) are held here instead of written, until the drop decides
    which of them the cache keeps."""

    @property
    def fresh(self) -> bool:
        return self.read is None

    @classmethod
    def build(cls, *, slots: list[int | None], feeds: list[list[int]], starts: list[int], next_pos: list[int],
              cache, read: str, temperatures: bool, projections: bool | None = None) -> "CacheBatch":
        """slots[i] None = a filler row (feeds [] there). starts: live entries before the write;
        read: "fresh", "range" (slots must then be the consecutive slots of one range) or "gather".
        projections None: as temperatures."""
        device, max_len, heads, scratch = cache.device, cache.max_len, cache.num_kv_heads, cache.scratch
        t = max(len(f) for f in feeds)
        counts = [len(f) for f in feeds]
        ids = torch.tensor([f + [0] * (t - len(f)) for f in feeds], dtype=torch.long, device=device)
        slot = torch.tensor([scratch if s is None else s for s in slots], dtype=torch.long, device=device)
        num_new = torch.tensor(counts, dtype=torch.long, device=device)
        start = torch.tensor(starts, dtype=torch.long, device=device)
        first_pos = torch.tensor(next_pos, dtype=torch.long, device=device)
        step = torch.arange(t, device=device)
        is_real = step < num_new.unsqueeze(1)  # [B, T]
        index = torch.where(is_real, start.unsqueeze(1) + step, step)  # padding -> scratch entry t
        row_slot = torch.where(is_real, slot.unsqueeze(1), scratch)
        token_index, kv_index = write_indices(row_slot, index, heads, max_len)
        padded_rows = any(0 < n < t for n in counts)
        if read == "fresh":
            read_as, upto = None, t
        elif read == "range":
            read_as, upto = _range_of(slots), max(s + n for s, n in zip(starts, counts))
        else:
            read_as, upto = slot, max(s + n for s, n in zip(starts, counts))
        return cls(
            input_ids=ids,
            rows=slot,
            positions=first_pos.unsqueeze(1) + step,
            token_index=token_index,
            kv_index=kv_index,
            valid=is_real.float() if padded_rows else None,
            num_new=num_new,
            new_length=start + num_new,
            new_next_pos=first_pos + num_new,
            read=read_as,
            upto=upto,
            query_index=index,
            last_index=(num_new - 1).clamp(min=0) if padded_rows else None,
            temperatures=temperatures,
            projections=temperatures if projections is None else projections or temperatures,
        )

    @classmethod
    def append(cls, cache, slots: list[int], token_ids: torch.Tensor, temperatures: bool = True,
               projections: bool | None = None) -> "CacheBatch":
        """Equal-length chunks [B, T] appended to any slots, empty or not (tests and tools: reads
        the slots' lengths from the cache; the engine passes its own mirrors instead)."""
        return cls.build(slots=list(slots), feeds=token_ids.tolist(), starts=[int(cache.length[s]) for s in slots],
                         next_pos=[int(cache.next_pos[s]) for s in slots], cache=cache, read="gather",
                         temperatures=temperatures, projections=projections)


def live_length(batch: CacheBatch) -> torch.Tensor:
    """[B] each row's live entries after the write, at least 1 (a filler row keeps its first
    entry, so that no row of the batch is all -inf)."""
    return batch.new_length.clamp(min=1)


def live_bias(batch: CacheBatch, dtype: torch.dtype) -> torch.Tensor:
    """[B, upto]: 0 for each row's live entries after the write (batch.live_length), -inf for
    the rest."""
    keys = torch.arange(batch.upto, device=batch.new_length.device)
    live = keys[None, :] < batch.live_length[:, None]
    return torch.zeros(live.shape, dtype=dtype, device=live.device).masked_fill_(~live, float("-inf"))


def write_indices(row_slot: torch.Tensor, index: torch.Tensor, heads: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where new entry (row, t) goes, from its slot and entry index [B, T]: the flat index into
    a [slots * max_len] buffer [B * T], and into a [slots * heads * max_len] one in (row, head,
    token) order [B * heads * T] (the cache's head-major layout)."""
    head = torch.arange(heads, device=index.device).view(1, heads, 1)
    token_index = (row_slot * max_len + index).reshape(-1)
    kv_index = ((row_slot.unsqueeze(1) * heads + head) * max_len + index.unsqueeze(1)).reshape(-1)
    return token_index, kv_index


def _range_of(slots: list[int | None]) -> slice:
    """The slot range a decode batch covers: row i is slot first + i (filler rows included)."""
    first = next(s - i for i, s in enumerate(slots) if s is not None)
    return slice(first, first + len(slots))
