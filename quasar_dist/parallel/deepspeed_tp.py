"""Tensor parallelism from outside the model: DeepSpeed AutoTP over an unchanged QuasarForCausalLM.

What AutoTP does to our decoder (checked by tests/test_parallel.py):
- every nn.Linear inside a DecoderLayer is sharded: q/k/v/gate/up column-wise (fewer local heads,
  which attention.py reads from the weight shapes), o_proj/down_proj row-wise followed by an
  all-reduce (the two points our injection policy names);
- lm_head becomes LmHeadLinearAllreduce: split along the hidden dim (in tp_grain_size chunks,
  so a 64-wide toy model puts all of it on rank 0) and all-reduced, so every rank gets the full,
  identical [.., vocab] logits. Its forward slices `input[:, :, shard]`, so it only takes
  [B, T, d]; forward_cached hands it [B, d] (last position only), hence LmHeadAnyRank below;
- embed_tokens, the norms and the TTM (plain Parameters, not Linears) stay whole on every rank.
Our decoder is not a transformers class, so AutoTP cannot find the all-reduce points by itself:
the explicit injection policy names them.
"""
from __future__ import annotations

import torch
from torch import nn

from quasar_dist.model import QuasarForCausalLM
from quasar_dist.model.decoder import DecoderLayer

from .config import check_shardable

ALL_REDUCE_LINEARS = ("self_attn.o_proj", "mlp.down_proj")


class LmHeadAnyRank(nn.Module):
    """Lets AutoTP's 3-D-only lm_head also take [B, d] (as forward_cached passes it)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    @property
    def weight(self) -> torch.Tensor:  # the local shard; callers read its device and dtype
        return self.inner.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.unsqueeze(1)).squeeze(1) if x.dim() == 2 else self.inner(x)


def shard_with_autotp(model: QuasarForCausalLM, tp: int, dtype: torch.dtype) -> QuasarForCausalLM:
    """Shard `model` in place over the current process group (one call per rank, same weights on
    every rank) and return it, still a QuasarForCausalLM (forward_cached, allocate_cache...)."""
    check_shardable(model.config, tp)
    import deepspeed

    engine = deepspeed.init_inference(
        model,
        tensor_parallel={"tp_size": tp},
        dtype=dtype,
        replace_with_kernel_inject=False,
        injection_policy={DecoderLayer: ALL_REDUCE_LINEARS},
    )
    sharded = engine.module  # the engine's own forward adds nothing we need; keep the model's API
    sharded.lm_head = LmHeadAnyRank(sharded.lm_head)
    return sharded
