"""Llama-family decoder with a token temperature mechanism in every layer. Plain PyTorch.

Two forward paths share the layer code:
  forward(input_ids, segment_ids)            full sequence (training, scoring, reference tests)
  forward_cached(batch, cache)               incremental decoding through TemperatureKVCache

Steps ("segments"): segment 0 is the prompt, segment s >= 1 the s-th reasoning step (a line,
its newline included). Queries in segment s see every key j with tau_j computed from the
context c_s of segments < s (c_0 = 0; ModelConfig.ttm_context): nothing depends on a later token.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, cached_attention, guided_attention
from .cache_batch import CacheBatch, live_bias, live_length
from .config import GUIDANCE_MODES, ModelConfig
from .fused import FusedProjections
from .kv_cache import DEAD, TemperatureKVCache
from .prefill_drop import PrefillDrop, check_prefill_drop, drop_cold_tokens
from .rope import RotaryEmbedding, signed
from .ttm import StackedTTM, TokenTemperature


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32 for reductions (norms, context sums); float64 is kept as it is."""
    return torch.promote_types(dtype, torch.float32)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(_compute_dtype(x.dtype))  # half types normalise in float32, float64 stays float64
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)
        self._fused = FusedProjections(self, ("gate_proj", "up_proj"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused.usable():
            gate, up = self._fused(x)
            return self.down_proj(F.silu(gate) * up)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def segment_log_tau(ttm: TokenTemperature, hn: torch.Tensor, segment_ids: torch.Tensor | None, context: str):
    """Temperatures for a full sequence. hn [B, T, d]; segment_ids [B, T] non-decreasing.
    Returns log_tau_by_segment [B, S, T] (key j's log temperature under c_s)."""
    ah = ttm.project(hn)  # [B, T, r]
    if segment_ids is None:  # c_0 = 0 (no queries either)
        return ttm.log_temperature(ah, hn.new_zeros(hn.shape[0], 1, (2 + ttm.hops) * ah.shape[-1])).unsqueeze(1)
    c = segment_context(hn, segment_ids, context)
    ctx = ttm.context(c)  # [B, S, 2r]
    if ttm.hops:  # the chain context hops over the tokens of the steps before s
        s = torch.arange(ctx.shape[1], device=hn.device)
        ctx = ttm.chain_context(ctx, ah, segment_ids.unsqueeze(1) < s[None, :, None])
    return ttm.log_temperature(ah.unsqueeze(1), ctx.unsqueeze(2))  # [B, S, T]


def segment_context(hn: torch.Tensor, segment_ids: torch.Tensor, context: str) -> torch.Tensor:
    """c_s for every segment s: [B, S, d]; c_0 = 0 and c_s reads only tokens of segments < s."""
    num_segments = int(segment_ids.max()) + 1
    acc = _compute_dtype(hn.dtype)
    if context == "last":  # the layer input of the token right before segment s starts
        s = torch.arange(num_segments, device=hn.device)
        before = (segment_ids.unsqueeze(-1) < s).sum(1)  # [B, S] tokens of segments < s
        last = (before - 1).clamp(min=0)
        c = hn.gather(1, last.unsqueeze(-1).expand(-1, -1, hn.shape[-1]))
        return c * (before > 0).unsqueeze(-1).to(hn.dtype)
    onehot = F.one_hot(segment_ids, num_segments).to(acc)  # [B, T, S]
    seg_sum = onehot.transpose(1, 2) @ hn.to(acc)  # [B, S, d]
    seg_count = onehot.sum(1)  # [B, S]
    ctx_sum = seg_sum.cumsum(1) - seg_sum  # exclusive prefix: segments < s
    ctx_count = seg_count.cumsum(1) - seg_count
    return (ctx_sum / ctx_count.clamp(min=1.0).unsqueeze(-1)).to(hn.dtype)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)
        self.ttm = TokenTemperature(cfg.hidden_size, cfg.ttm_dim, cfg.tau_max, cfg.ttm_hops)
        self.ttm_context = cfg.ttm_context
        # q|k|v|A in one matmul when decoding with temperatures
        self._fused_with_ttm = FusedProjections(self, ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "ttm.A"))

    def _finish(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn.out(o)
        return x + self.mlp(self.post_attention_layernorm(x))

    def forward(self, x, cos, sin, segment_ids, mask, guidance, attention_log_tau=None):
        """Full sequence. Returns (x, log_tau_by_segment [B, S, T]). `attention_log_tau`, if
        given, maps the temperatures to those attention uses (training's relaxed eviction)."""
        hn = self.input_layernorm(x)
        q, k, v = self.self_attn.qkv(hn, cos, sin)
        log_tau_s = segment_log_tau(self.ttm, hn, segment_ids, self.ttm_context)
        used = log_tau_s if attention_log_tau is None else attention_log_tau(log_tau_s)
        if used.shape[1] == 1:
            log_tau = used[:, 0]  # [B, T]: one temperature per key
        else:  # each query sees the temperatures of its own step: [B, Tq, Tk]
            t = x.shape[1]
            log_tau = used.gather(1, segment_ids.unsqueeze(-1).expand(-1, -1, t))
        o = guided_attention(q, k, v, log_tau=log_tau, mask=mask, guidance=guidance)
        return self._finish(x, o), log_tau_s

    def forward_cached(self, x, cos, sin, layer_idx: int, cache: TemperatureKVCache, batch: CacheBatch,
                       fresh_mask, guidance: str):
        """New tokens through the layer: their entries are written, then attention reads the
        cache (or, for fresh prompts, the chunk itself with fresh_mask [B, T, T])."""
        hn = self.input_layernorm(x)
        if batch.projections and self._fused_with_ttm.usable():
            joint = self._fused_with_ttm.joint(hn)
            r = self.ttm.A.shape[0]
            q, k, v = self.self_attn.qkv_from_joint(joint[..., :-r], cos, batch.signed_sin)
            ah = joint[..., -r:]  # [B, T, r]
        else:
            q, k, v = self.self_attn.qkv(hn, cos, sin, batch.signed_sin)
            ah = self.ttm.project(hn) if batch.projections else None
        log_tau_new = None  # guidance off and nobody reads temperatures now: no read-out
        if batch.temperatures:
            bc = cache.bc[layer_idx, batch.read] if isinstance(batch.read, slice) else cache.bc[layer_idx].index_select(0, batch.rows)
            log_tau_new = self.ttm.readout(ah, bc.unsqueeze(1))  # [B, T]
        cache.write(layer_idx, batch, k, v, ah, log_tau_new, hn)
        if batch.fresh:
            o = guided_attention(q, k, v, log_tau=log_tau_new, mask=fresh_mask, guidance=guidance)
        else:
            keys, values, log_tau = cache.read(layer_idx, batch, with_temperatures=guidance != "off")
            o = cached_attention(q, keys, values, log_tau, batch.live_bias, guidance=guidance,
                                 query_index=batch.query_index, lengths=batch.live_length)
        return self._finish(x, o)


class DecoderStack(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)


class QuasarForCausalLM(nn.Module):
    """`forward(input_ids [B, T]) -> logits [B, T, vocab]` (the load_model contract)."""

    def __init__(self, cfg: ModelConfig, guidance: str | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.guidance = guidance or cfg.guidance
        self.model = DecoderStack(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.stacked_ttm = StackedTTM(self.model.layers)  # all layers' TTMs at once (boundaries)

    @property
    def guidance(self) -> str:
        return self._guidance

    @guidance.setter
    def guidance(self, mode: str) -> None:
        if mode not in GUIDANCE_MODES:
            raise ValueError(f"unknown guidance {mode!r} (use one of {', '.join(GUIDANCE_MODES)})")
        self._guidance = mode

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None, return_temperatures: bool = False,
                attention_log_tau=None):
        """`attention_log_tau`: an optional map of each layer's log_tau_by_segment [B, S, T] to
        the one attention uses, or a list of such maps, one per layer (None: that layer's own);
        training only; the returned temperatures are the model's own."""
        bsz, t = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        positions = torch.arange(t, device=input_ids.device).expand(bsz, t)
        cos, sin = self.model.rotary_emb(positions, x.dtype)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril().unsqueeze(0)
        temperatures = []
        maps = attention_log_tau if isinstance(attention_log_tau, (list, tuple)) else [attention_log_tau] * len(self.model.layers)
        for layer, layer_map in zip(self.model.layers, maps, strict=True):
            x, log_tau_s = layer(x, cos, sin, segment_ids, mask, self.guidance, layer_map)
            temperatures.append(log_tau_s)
        logits = self.lm_head(self.model.norm(x))
        return (logits, temperatures) if return_temperatures else logits

    def forward_cached(self, batch: CacheBatch, cache: TemperatureKVCache, last_only: bool = True,
                       drop: PrefillDrop | None = None) -> torch.Tensor:
        """Append the batch's tokens to their cache slots (cache_batch.py) and return logits:
        [B, V] at each row's last real token if last_only, else [B, T, V]. `drop` (fresh
        prompts only): leave the cold prompt tokens out after its first layers (prefill_drop.py);
        the cache then holds each row's kept entries, and last_only logits are returned."""
        if not batch.temperatures and self.guidance != "off":
            raise ValueError(f"guidance {self.guidance!r} needs temperatures")
        x = self.model.embed_tokens(batch.input_ids)
        cos, sin = self.model.rotary_emb(batch.positions, x.dtype)
        batch.signed_sin = signed(sin)  # once for every layer
        if not batch.fresh:
            batch.live_length = live_length(batch)
            batch.live_bias = live_bias(batch, x.dtype)
        fresh_mask = None
        if batch.fresh:
            t = x.shape[1]
            fresh_mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril().unsqueeze(0)  # [1, T, T]
            if batch.valid is not None:  # right padding: no real query attends a padding key
                fresh_mask = fresh_mask & (batch.valid > 0).unsqueeze(1)
        if drop is not None:
            check_prefill_drop(self.config, batch, drop)
            batch.deferred = []  # the layers before the decision hand their entries over
        for i, layer in enumerate(self.model.layers):
            if drop is not None and i == drop.layers:
                x, cos, sin, batch, fresh_mask = drop_cold_tokens(self, cache, batch, drop, x, cos, sin)
            x = layer.forward_cached(x, cos, sin, i, cache, batch, fresh_mask, self.guidance)
        cache.advance(batch)
        if not last_only:
            h = x
        elif batch.last_index is None:
            h = x[:, -1]
        else:
            h = x[torch.arange(x.shape[0], device=x.device), batch.last_index]
        return self.lm_head(self.model.norm(h))

    @torch.no_grad()
    def commit_steps(self, cache: TemperatureKVCache, slots: torch.Tensor, seen: torch.Tensor, longest: int,
                     write: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Step boundary of `slots` [S]: fold each finished step into its context, recompute B c
        (with hops [B c ; q_0 .. q_H], read from the slot's live entries: seen [S] of them, the
        step just finished included), and read out every live entry's temperature from its
        cached A h (the temperature cache), for all slots and layers at once, laid out as each
        slot's first T = longest = max(seen) entries (one gather of whole rows). Returns log tau
        [L, S, T] (-inf past a slot's live entries) and the new context [L, S, (2 + H) r];
        `write`: store the temperatures in the cache (not for a lazy one, kv_cache.py)."""
        ah = cache.first_rows(cache.ah, slots, longest)  # [L, S, T, r]
        ctx = self.stacked_ttm.context(cache.commit_context(slots)).unsqueeze(2)  # [L, S, 1, 2r]
        bc = self.stacked_ttm.steps_chain_context(ctx, ah, seen.unsqueeze(1))[:, :, 0]
        cache.bc.index_copy_(1, slots, bc)
        log_tau = self.stacked_ttm.log_temperature(ah, bc.unsqueeze(2)).float()  # [L, S, T]
        log_tau.masked_fill_(torch.arange(longest, device=seen.device)[None, :] >= seen[:, None], DEAD)
        if write:
            cache.write_first_rows(cache.log_tau, slots, log_tau)
        return log_tau, bc

    @torch.no_grad()
    def record_boundaries(self, cache: TemperatureKVCache, slots: torch.Tensor, at: torch.Tensor) -> None:
        """Step boundary of `slots` [S] whose heats come later (engine/step_heats.py): fold each
        finished step into its context and log [B c ; E c] in row `at` [S] of the slot's
        boundary log. The hops, the temperatures and the slot's bc wait for `boundary_heats`."""
        cache.record_boundaries(slots, at, self.stacked_ttm.context(cache.commit_context(slots)))

    @torch.no_grad()
    def boundary_heats(self, ah: torch.Tensor, logged: torch.Tensor, seen: torch.Tensor, step_entries: torch.Tensor,
                       step_owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logged boundaries, many rows at once: ah [L, B, T, r] each row's first T entries and
        logged [L, B, K, 2r] the [B c ; E c] of its K boundaries (the cache's boundary log, or
        copies of it: engine/step_heats.py); boundary k of row b saw the first seen[b, k]
        entries (0 past the row's log) and its chain context hops over them, every boundary's
        query a row of one matrix product per hop. Returns (the mean temperature, over layers
        and over its step's entries, of each boundary [B * K]; the contexts [L, B, K, W]), from
        step_entries [M] (flat indices into [B, T] of the steps' tokens) and step_owner [M]
        (each one's boundary, flat into [B, K])."""
        layers, b, t, r = ah.shape
        k = logged.shape[2]
        stacked = self.stacked_ttm
        ctx = stacked.steps_chain_context(logged, ah, seen)
        log_tau = stacked.owned_log_temperature(ah, ctx, step_entries, step_owner)
        tau = log_tau.float().exp_().mean(0)  # [M]
        counts = torch.bincount(step_owner, minlength=b * k).clamp_(min=1)
        return torch.zeros(b * k, dtype=tau.dtype, device=tau.device).index_add_(0, step_owner, tau) / counts, ctx

    @torch.no_grad()
    def refresh_temperatures(self, cache: TemperatureKVCache, slot: int) -> None:
        """Every live entry of `slot` re-read under the slot's current context (what the last
        commit would have written had it refreshed them all)."""
        n, layers = int(cache.length[slot]), cache.ah.shape[0]
        ah = cache.ah[:, slot, :n]  # [L, n, r]
        cache.log_tau[:, slot, :n] = self.stacked_ttm.log_temperature(ah, cache.bc[:, slot].unsqueeze(1)).float()

    def allocate_cache(self, num_slots: int, max_len: int) -> TemperatureKVCache:
        cfg = self.config
        attn = self.model.layers[0].self_attn
        p = self.lm_head.weight
        return TemperatureKVCache(
            num_layers=cfg.num_layers,
            num_slots=num_slots,
            max_len=max_len,
            num_kv_heads=attn.local_kv_heads,
            head_dim=cfg.head_dim,
            ttm_dim=cfg.ttm_dim,
            context_width=(2 + cfg.ttm_hops) * cfg.ttm_dim,
            hidden_size=cfg.hidden_size,
            context=cfg.ttm_context,
            dtype=p.dtype,
            device=p.device,
        )
