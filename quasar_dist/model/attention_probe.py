"""Attention weights, for the eviction baselines that rank keys by attention (SnapKV, H2O,
TOVA). The fused kernels never materialise them, so this is an eager re-run of the forward
(no segments: every query under the prompt's context c_0, as in prefill) that keeps each
layer's softmax. It computes exactly what `QuasarForCausalLM.forward` computes (tested)."""
from __future__ import annotations

import math

import torch

from .decoder import segment_log_tau


@torch.no_grad()
def attention_probabilities(model, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids [1, T] -> (logits [1, T, V], attention [L, H, T, T]: query i's weights on key j)."""
    t = input_ids.shape[1]
    x = model.model.embed_tokens(input_ids)
    positions = torch.arange(t, device=input_ids.device).unsqueeze(0)
    cos, sin = model.model.rotary_emb(positions, x.dtype)
    future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
    weights = []
    for layer in model.model.layers:
        hn = layer.input_layernorm(x)
        q, k, v = layer.self_attn.qkv(hn, cos, sin)
        groups = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # [1, H, T, T]
        if model.guidance != "off":
            log_tau = segment_log_tau(layer.ttm, hn, None, layer.ttm_context)[:, 0]  # [1, T]
            if model.guidance == "bias":
                scores = scores + log_tau[:, None, None, :].to(scores.dtype)
            else:
                scores = scores * log_tau.exp()[:, None, None, :].to(scores.dtype)
        p = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        weights.append(p[0])
        x = layer._finish(x, p @ v)
    logits = model.lm_head(model.model.norm(x))
    return logits, torch.stack(weights)
