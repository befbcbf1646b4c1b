"""Guided attention: plain scaled-dot-product attention steered by key temperatures.

guidance modes (T_ij = tau_j, the temperature of key j as seen from query i's step):
  scale: softmax(Q K^T / sqrt(d) ⊙ T) V   -- the paper's formula; for one temperature per key it
         equals scaling key j by tau_j, so the fused SDPA kernel still applies.
  bias:  softmax(Q K^T / sqrt(d) + log T) V -- attention mass re-weighted by tau_j and
         renormalised, so a cold key really loses mass (and evicting it is nearly lossless).
  off:   plain attention (the CoT baseline and the reference for equivalence tests).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels
from .config import ModelConfig
from .fused import FusedProjections
from .kv_cache import DEAD
from .rope import apply_rope, apply_rope_bthd, signed


class Attention(nn.Module):
    """q/k/v/o projections. Head counts come from the weight shapes, so a tensor-parallel shard
    (fewer local heads after AutoTP) runs the same code."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.head_dim = cfg.head_dim
        d, hd = cfg.hidden_size, cfg.head_dim
        self.q_proj = nn.Linear(d, cfg.num_heads * hd, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(d, cfg.num_kv_heads * hd, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(d, cfg.num_kv_heads * hd, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(cfg.num_heads * hd, d, bias=False)
        self._fused = FusedProjections(self, ("q_proj", "k_proj", "v_proj"))

    @property
    def local_kv_heads(self) -> int:
        return self.k_proj.weight.shape[0] // self.head_dim

    def qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, signed_sin: torch.Tensor | None = None):
        """x [B, T, d] -> q [B, H, T, D], k/v [B, Hkv, T, D] (RoPE applied to q and k).
        signed_sin: rope.signed(sin), when the caller computed it once for every layer."""
        bsz, t, _ = x.shape
        if self._fused.usable():  # inference: one matmul, one RoPE over the q and k heads together
            return self.qkv_from_joint(self._fused.joint(x), cos, signed(sin) if signed_sin is None else signed_sin)
        q = self.q_proj(x).view(bsz, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(bsz, t, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(bsz, t, -1, self.head_dim).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def qkv_from_joint(self, joint: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor):
        """The q|k|v projections side by side [B, T, (H + 2 Hkv) D] (one fused matmul) -> q, k, v
        as `qkv` returns them, RoPE applied to the q and k heads in one go."""
        bsz, t, _ = joint.shape
        out = joint.view(bsz, t, -1, self.head_dim)  # [B, T, H + 2 Hkv, D]
        heads, kv_heads = self.q_proj.out_features // self.head_dim, self.k_proj.out_features // self.head_dim
        qk = apply_rope_bthd(out[:, :, : heads + kv_heads], cos, signed_sin)
        v = out[:, :, heads + kv_heads :]
        return qk[:, :, :heads].transpose(1, 2), qk[:, :, heads:].transpose(1, 2), v.transpose(1, 2)

    def out(self, o: torch.Tensor) -> torch.Tensor:
        """o [B, H, T, D] -> [B, T, d]."""
        bsz, _, t, _ = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(bsz, t, -1))


def guided_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    log_tau: torch.Tensor | None,
    mask: torch.Tensor,
    guidance: str,
) -> torch.Tensor:
    """q [B, H, Tq, D]; k, v [B, Hkv, Tk, D]; mask bool [B|1, Tq, Tk] (True = may attend);
    log_tau None, [B, Tk] (one temperature per key) or [B, Tq, Tk] (per query's step)."""
    gqa = q.shape[1] != k.shape[1]  # grouped-query attention: SDPA shares kv heads itself
    if guidance == "off" or log_tau is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.unsqueeze(1), enable_gqa=gqa)
    if log_tau.dim() == 2:
        log_tau = log_tau.unsqueeze(1)  # [B, 1, Tk]
    if guidance == "bias":
        bias = log_tau.masked_fill(~mask, float("-inf")).unsqueeze(1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), enable_gqa=gqa)
    if guidance == "scale":
        if log_tau.shape[1] == 1:  # one temperature per key: scale the keys, keep the fused kernel
            k = k * log_tau.exp().transpose(1, 2).unsqueeze(1).to(k.dtype)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.unsqueeze(1), enable_gqa=gqa)
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        scores = scores * log_tau.exp().unsqueeze(1).to(q.dtype)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        return torch.softmax(scores, dim=-1) @ v
    raise ValueError(f"unknown guidance {guidance!r} (use one of scale, bias, off)")


def cached_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_tau: torch.Tensor | None,
    live_bias: torch.Tensor,
    *,
    guidance: str,
    query_index: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention over cache entries. q [B, H, T, D]; k, v [B, Hkv, N, D]; log_tau [B, N] (-inf
    for dead entries, kv_cache.py; None with guidance off, which never reads it); live_bias
    [B, N] 0 for live entries, -inf for dead ones (CacheBatch.live_bias). Under `bias` guidance
    log_tau is the whole mask as is; the other forms mask with live_bias. query_index [B, T]
    (cache index of each query) is needed only when T > 1 (causality inside the chunk).
    Decoding (T = 1) on the CPU runs the C kernel (cpu_kernels.py) when `lengths` [B] (each
    row's live entries, a prefix) is given: it reads each row only up to its length, and the
    bias only under `bias` guidance. Otherwise decoding folds each kv head's query group into
    the query axis and runs batched matmuls, so every cached key is read once per kv head and
    no mask is built."""
    if guidance == "scale":
        k = k * log_tau.exp()[:, None, :, None].to(k.dtype)  # dead entries: 0 * k, masked below
    bias = log_tau if guidance == "bias" else live_bias
    bsz, heads, t, d = q.shape
    kv_heads = k.shape[1]
    if t == 1 and lengths is not None and guidance != "scale" and cpu_kernels.usable(q, k, v):
        return cpu_kernels.decode_attention(q, k, v, bias if guidance == "bias" else None, lengths, 1.0 / math.sqrt(d))
    if t == 1:  # plain batched matmuls: on CPU ~1.5x faster than SDPA's kernel at this shape
        grouped = q.reshape(bsz, kv_heads, heads // kv_heads, d)  # [B, Hkv, G, D]
        scores = torch.baddbmm(bias[:, None, None, :].to(q.dtype).expand(bsz, kv_heads, heads // kv_heads, -1)
                               .reshape(bsz * kv_heads, heads // kv_heads, -1),
                               grouped.reshape(bsz * kv_heads, heads // kv_heads, d),
                               k.reshape(bsz * kv_heads, -1, d).transpose(1, 2), alpha=1.0 / math.sqrt(d))
        o = torch.softmax(scores, dim=-1).view(bsz, kv_heads, heads // kv_heads, -1) @ v  # [B, Hkv, G, D]
        return o.reshape(bsz, heads, 1, d)
    keys = torch.arange(k.shape[2], device=k.device)
    causal = torch.where(keys > query_index[:, :, None], DEAD, 0.0)  # [B, T, N]
    mask = (bias[:, None, :] + causal).unsqueeze(1).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=heads != kv_heads)
