"""Llama-family decoder with a token temperature mechanism in every layer. Plain PyTorch.

Two forward paths share the layer code:
  forward(input_ids, segment_ids)            full sequence (training, scoring, reference tests)
  forward_cached(input_ids, cache, slots)    incremental decoding through TemperatureKVCache

Steps ("segments"): segment 0 is the prompt, segment s >= 1 the s-th reasoning step (a line,
its newline included). Queries in segment s see every key j with tau_j computed from the
context c_s = mean layer input over segments < s (c_0 = 0): nothing depends on a later token.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, guided_attention
from .config import GUIDANCE_MODES, ModelConfig
from .kv_cache import TemperatureKVCache
from .rope import RotaryEmbedding
from .ttm import TokenTemperature


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def segment_log_tau(ttm: TokenTemperature, hn: torch.Tensor, segment_ids: torch.Tensor | None):
    """Temperatures for a full sequence. hn [B, T, d]; segment_ids [B, T] non-decreasing.
    Returns log_tau_by_segment [B, S, T] (key j's log temperature under c_s)."""
    ah = ttm.project(hn)  # [B, T, r]
    if segment_ids is None:
        return ttm.log_temperature(ah, torch.zeros_like(ah[:, :1])).unsqueeze(1)  # c_0 = 0
    num_segments = int(segment_ids.max()) + 1
    acc = _compute_dtype(hn.dtype)
    onehot = F.one_hot(segment_ids, num_segments).to(acc)  # [B, T, S]
    seg_sum = onehot.transpose(1, 2) @ hn.to(acc)  # [B, S, d]
    seg_count = onehot.sum(1)  # [B, S]
    ctx_sum = seg_sum.cumsum(1) - seg_sum  # exclusive prefix: segments < s
    ctx_count = seg_count.cumsum(1) - seg_count
    c = (ctx_sum / ctx_count.clamp(min=1.0).unsqueeze(-1)).to(hn.dtype)
    bc = ttm.context(c)  # [B, S, r]
    return ttm.log_temperature(ah.unsqueeze(1), bc.unsqueeze(2))  # [B, S, T]


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)
        self.ttm = TokenTemperature(cfg.hidden_size, cfg.ttm_dim, cfg.tau_max)

    def _finish(self, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn.out(o)
        return x + self.mlp(self.post_attention_layernorm(x))

    def forward(self, x, cos, sin, segment_ids, mask, guidance):
        """Full sequence. Returns (x, log_tau_by_segment [B, S, T])."""
        hn = self.input_layernorm(x)
        q, k, v = self.self_attn.qkv(hn, cos, sin)
        log_tau_s = segment_log_tau(self.ttm, hn, segment_ids)
        if log_tau_s.shape[1] == 1:
            log_tau = log_tau_s[:, 0]  # [B, T]: one temperature per key
        else:  # each query sees the temperatures of its own step: [B, Tq, Tk]
            t = x.shape[1]
            log_tau = log_tau_s.gather(1, segment_ids.unsqueeze(-1).expand(-1, -1, t))
        o = guided_attention(q, k, v, log_tau=log_tau, mask=mask, guidance=guidance)
        return self._finish(x, o), log_tau_s

    def forward_cached(self, x, cos, sin, layer_idx, cache: TemperatureKVCache, slots, read_slots, mask, guidance):
        hn = self.input_layernorm(x)
        q, k, v = self.self_attn.qkv(hn, cos, sin)
        ah = self.ttm.project(hn)  # [B, T, r]
        log_tau_new = self.ttm.log_temperature(ah, cache.bc[layer_idx, slots].unsqueeze(1))
        cache.write(layer_idx, slots, k, v, ah, log_tau_new, hn.sum(1))
        keys, values, log_tau = cache.read(layer_idx, read_slots, mask.shape[-1])
        o = guided_attention(q, keys, values, log_tau=log_tau, mask=mask, guidance=guidance)
        return self._finish(x, o)


def _as_slice(slots: torch.Tensor) -> torch.Tensor | slice:
    """Consecutive ascending slots as a slice (cache reads become views), else the index."""
    first, n = int(slots[0]), slots.numel()
    if int(slots[-1]) - first + 1 == n and (n == 1 or bool((slots.diff() == 1).all())):
        return slice(first, first + n)
    return slots


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

    @property
    def guidance(self) -> str:
        return self._guidance

    @guidance.setter
    def guidance(self, mode: str) -> None:
        if mode not in GUIDANCE_MODES:
            raise ValueError(f"unknown guidance {mode!r} (use one of {', '.join(GUIDANCE_MODES)})")
        self._guidance = mode

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None, return_temperatures: bool = False):
        bsz, t = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        positions = torch.arange(t, device=input_ids.device).expand(bsz, t)
        cos, sin = self.model.rotary_emb(positions, x.dtype)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril().unsqueeze(0)
        temperatures = []
        for layer in self.model.layers:
            x, log_tau_s = layer(x, cos, sin, segment_ids, mask, self.guidance)
            temperatures.append(log_tau_s)
        logits = self.lm_head(self.model.norm(x))
        return (logits, temperatures) if return_temperatures else logits

    def forward_cached(self, input_ids: torch.Tensor, cache: TemperatureKVCache, slots: torch.Tensor, last_only: bool = True):
        """Append input_ids [B, T] to the given cache slots and return logits ([B, V] for the
        last position if last_only, else [B, T, V])."""
        bsz, t = input_ids.shape
        device = input_ids.device
        start = cache.length[slots]  # [B]
        positions = cache.next_pos[slots, None] + torch.arange(t, device=device)
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.model.rotary_emb(positions, x.dtype)
        upto = int((start + t).max())
        query_index = start[:, None] + torch.arange(t, device=device)  # cache index of each query
        mask = torch.arange(upto, device=device)[None, None, :] <= query_index[:, :, None]  # [B, T, upto]
        read_slots = _as_slice(slots)
        for i, layer in enumerate(self.model.layers):
            x = layer.forward_cached(x, cos, sin, i, cache, slots, read_slots, mask, self.guidance)
        cache.advance(slots, t)
        h = self.model.norm(x[:, -1] if last_only else x)
        return self.lm_head(h)

    @torch.no_grad()
    def commit_step(self, cache: TemperatureKVCache, slot: int) -> int:
        """Step boundary: fold the finished step into the context, recompute B c, and refresh
        every live entry's temperature from its cached A h. Returns the entries refreshed
        (temperature-cache hits: projections reused, not recomputed)."""
        c = cache.commit_context(slot)  # [layers, d]
        n = int(cache.length[slot])
        for i, layer in enumerate(self.model.layers):
            bc = layer.ttm.context(c[i].to(cache.bc.dtype))
            cache.bc[i, slot] = bc
            cache.log_tau[i, slot, :n] = layer.ttm.log_temperature(cache.ah[i, slot, :n], bc).float()
        return n * len(self.model.layers)

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
            hidden_size=cfg.hidden_size,
            dtype=p.dtype,
            device=p.device,
        )
