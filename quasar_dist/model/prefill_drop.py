"""Algorithm 1 of the paper ("integrated token processing") in prefill: after the first `layers`
layers, the prompt tokens that a KV budget would evict leave the active set, so the later
layers neither compute them as queries nor store their keys and values (LazyLLM, FastV and
GemFilter do the same with other scores).

The decision is the budget's (reasoning/signals.py budget_keep_mask) or the threshold's
(`keep_above`), made earlier: each prompt token is scored by its largest (`over_layers` "max")
or mean log temperature over layers 0..`layers` under the context step 1 will see (each
layer's input at the prompt's last token; ModelConfig.ttm_context "last"). Layer `layers`
itself contributes the temperatures of its input (the TTM needs only that), then runs on the
kept tokens: with `layers` = 1 only layer 0 computes the whole prompt, and the scores already
have one layer of attention behind them. The first `sinks` and last `recent` tokens always stay
(the last one must: its logits are the prefill's output). The layers before the decision hold
their entries back (CacheBatch.deferred: a fresh prompt attends to itself, not to the cache);
after it only the kept entries are written, and the rest of the forward runs on the kept tokens
only, at their own RoPE positions, so the cache ends in the state an eviction right after
prefill would leave, minus the work, and never holds the dropped tokens: a slot needs entries
for what a prompt keeps, not for the prompt (ReasoningConfig.kv_slot_entries).

Only fresh batches (prompts of empty slots) drop: nothing else holds a whole prompt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import check_drop_layers
from .cache_batch import CacheBatch, write_indices
from .kv_cache import TemperatureKVCache, combine_layers


@dataclass(slots=True)
class PrefillDrop:
    layers: int
    """Layers computed on the whole prompt; the rest see the kept tokens only."""
    keep: list[int] | None
    """Entries each row keeps (its prompt length for a row that drops nothing); None: every
    row keeps its protected tokens and those at least `keep_above` warm."""
    sinks: int
    recent: int
    keep_above: float | None = None
    """Temperature threshold (with keep None); rows in `keep_all` keep everything."""
    keep_all: list[bool] | None = None
    over_layers: str = "max"
    """How the layers' temperatures combine into a token's score (kv_cache.combine_layers)."""
    kept: list[int] | None = None
    """Filled by the forward: the entries each row kept."""


def check_prefill_drop(config, batch: CacheBatch, drop: PrefillDrop) -> None:
    if not batch.fresh or not batch.projections:
        raise ValueError("prefill dropping needs a fresh batch of prompts with temperature projections")
    check_drop_layers(config, drop.layers)


def protected_tokens(lengths: torch.Tensor, t: int, sinks: int, recent: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, protected) [B, T]: the row's tokens, and its first `sinks` and last `recent` (at
    least the last one)."""
    j = torch.arange(t, device=lengths.device)[None, :]
    real = j < lengths[:, None]
    return real, real & ((j < sinks) | (j >= lengths[:, None] - max(1, recent)))


def keep_counts(drop: PrefillDrop, scores: torch.Tensor, lengths: torch.Tensor) -> list[int]:
    """Entries each row keeps: the given counts, or (threshold) the protected and the warm ones
    (one transfer of B integers: the host must know them to size the rest of the forward)."""
    if drop.keep is not None:
        return list(drop.keep)
    real, protected = protected_tokens(lengths, scores.shape[1], drop.sinks, drop.recent)
    warm = protected | (real & (scores >= math.log(drop.keep_above)))
    keep = warm.sum(1).tolist()
    keep_all = drop.keep_all or [False] * len(keep)
    return [n if everything else k for k, n, everything in zip(keep, lengths.tolist(), keep_all)]


def keep_order(scores: torch.Tensor, lengths: torch.Tensor, keep: torch.Tensor, width: int, sinks: int,
               recent: int) -> torch.Tensor:
    """[B, T] scores -> [B, T'] indices of each row's kept tokens in position order (T' = width,
    the most any row keeps; a row keeping fewer repeats its last kept index as padding). The protected tokens
    (first `sinks`, last `recent`, at least the last) first, then the warmest."""
    t = scores.shape[1]
    j = torch.arange(t, device=scores.device)[None, :]
    real, protected = protected_tokens(lengths, t, sinks, recent)
    ranked = torch.where(protected, torch.inf, torch.where(real, scores.float(), -torch.inf))
    by_warmth = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(by_warmth).scatter_(1, by_warmth, j.expand_as(by_warmth).contiguous())
    kept = rank < keep[:, None]
    order = torch.where(kept, j, t + j).argsort(1)[:, :width]  # kept first, by position
    last = (keep - 1).clamp(min=0)[:, None]
    pad = torch.arange(order.shape[1], device=order.device)[None, :] >= keep[:, None]
    return torch.where(pad, order.gather(1, last), order)


@torch.no_grad()
def step_one_scores(model, cache: TemperatureKVCache, batch: CacheBatch, upto: int, x: torch.Tensor,
                    over_layers: str = "max") -> torch.Tensor:
    """[B, T] max (or mean) over layers 0..upto of each prompt token's log temperature under step 1's
    context (the layer input of the row's last prompt token): layers < upto from what they
    held back (batch.deferred), layer `upto` from its input x (the output of the layers before it),
    all upto + 1 layers in one stacked computation. With hops, the chain context reads each row's
    own prompt tokens (its entries before step 1): the batch's first num_new places of a row, as
    one boundary per row of steps_chain_context (the padding after them masked)."""
    layer = model.model.layers[upto]
    hn = layer.input_layernorm(x)
    last = hn[torch.arange(x.shape[0], device=x.device), (batch.num_new - 1).clamp(min=0)]  # [B, d]
    c = torch.cat([cache.pend_last[:upto].index_select(1, batch.rows), last.unsqueeze(0).to(cache.pend_last.dtype)])
    ah = torch.stack([entries[2] for entries in batch.deferred[:upto]] + [layer.ttm.project(hn)])  # [l + 1, B, T, r]
    stacked = model.stacked_ttm
    ctx = stacked.steps_chain_context(stacked.context(c).unsqueeze(2), ah, batch.num_new.unsqueeze(1))  # [l + 1, B, 1, W]
    return combine_layers(stacked.log_temperature(ah, ctx).float(), over_layers)


def drop_cold_tokens(model, cache: TemperatureKVCache, batch: CacheBatch, drop: PrefillDrop, x, cos, sin):
    """Decide before layer `drop.layers`, compact the layers before it, and return the forward's
    state for the kept tokens: (x, cos, sin, batch, fresh_mask) with T' = the most any row keeps."""
    scores = step_one_scores(model, cache, batch, drop.layers, x, drop.over_layers)
    drop.kept = keep_counts(drop, scores, batch.num_new)
    keep = torch.tensor(drop.kept, dtype=torch.long, device=x.device)
    order = keep_order(scores, batch.num_new, keep, max(drop.kept), drop.sinks, drop.recent)  # [B, T']
    cache.write_kept(batch.deferred, batch.rows, order, keep)
    kept = kept_batch(batch, order, keep, cache)
    t2 = order.shape[1]
    mask = torch.ones(t2, t2, dtype=torch.bool, device=x.device).tril().unsqueeze(0)
    if kept.valid is not None:
        mask = mask & (kept.valid > 0).unsqueeze(1)
    pick = order.unsqueeze(-1)
    x = x.gather(1, pick.expand(-1, -1, x.shape[-1]))
    cos = cos.gather(1, pick.expand(-1, -1, cos.shape[-1]))
    sin = sin.gather(1, pick.expand(-1, -1, sin.shape[-1]))
    kept.signed_sin = batch.signed_sin.gather(1, pick.expand(-1, -1, sin.shape[-1]))
    return x, cos, sin, kept, mask


def kept_batch(batch: CacheBatch, order: torch.Tensor, keep: torch.Tensor, cache: TemperatureKVCache) -> CacheBatch:
    """The fresh batch of the kept tokens: entry i of a row goes to its slot's entry i (the
    compacted layout), padding to the scratch slot; positions are the tokens' own."""
    b, t2 = order.shape
    step = torch.arange(t2, device=order.device)
    is_real = step[None, :] < keep[:, None]
    row_slot = torch.where(is_real, batch.rows[:, None], cache.scratch)
    index = step.expand(b, t2)
    token_index, kv_index = write_indices(row_slot, index, cache.num_kv_heads, cache.max_len)
    padded = bool((keep < t2).any())
    return CacheBatch(
        input_ids=batch.input_ids.gather(1, order), rows=batch.rows, positions=batch.positions.gather(1, order),
        token_index=token_index, kv_index=kv_index,
        valid=is_real.float() if padded else None, num_new=keep, new_length=keep, new_next_pos=batch.new_next_pos,
        read=None, upto=t2, query_index=index, last_index=(keep - 1) if padded else None,
        temperatures=batch.temperatures, projections=batch.projections,
    )
