"""The named methods a driver may call on every rank of a gang (the whole process boundary).

Each takes the rank's state (model, tokenizer, rank) and plain, picklable arguments that are the
same on every rank; every rank computes, the gang returns rank 0's result. Anything not in
RANK_METHODS cannot be called.
"""
from __future__ import annotations

import random
from typing import Any, Callable

import torch

from .comm_fix import shm_allreduce_disabled
from .greedy import greedy_decode


def ping(state) -> dict:
    return {"rank": state.rank, "tp": state.tp, "device": str(next(state.model.parameters()).device)}


def logits(state, input_ids: list[list[int]]) -> torch.Tensor:
    """Full-sequence logits [B, T, vocab] (float32, on CPU) for equal-length rows."""
    device = next(state.model.parameters()).device
    return state.model(torch.tensor(input_ids, device=device)).float().cpu()


def greedy(state, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
    """Greedy continuation token ids of text prompts (prompt encoding as in reasoning)."""
    return greedy_decode(state.model, [state.tokenizer.encode_prompt(p) for p in prompts], max_new_tokens)


def solve(state, prompts: list[str], config: dict, seed: int) -> list[dict]:
    """The reasoning entry point, run identically on every rank with the same seed (sampling
    must agree across ranks or their shards diverge). One engine (one cache allocation) per
    cache shape is kept for the rank's life, as Reasoner does."""
    from quasar_dist.reasoning.config import ReasoningConfig
    from quasar_dist.reasoning.solve import build_engine, slot_entries, solve_prompts
    from quasar_dist.util.typed_config import from_dict

    random.seed(seed)
    torch.manual_seed(seed)
    reasoning_cfg = from_dict(ReasoningConfig, config, source="reasoning config")
    key = (reasoning_cfg.max_batch_size, reasoning_cfg.cache_memory_mb, reasoning_cfg.max_cache_len,
           slot_entries(state.model.config, reasoning_cfg))
    if key not in state.engines:
        state.engines[key] = build_engine(state.model, state.tokenizer, reasoning_cfg)
    return solve_prompts(state.model, state.tokenizer, prompts, reasoning_cfg, engine=state.engines[key])


def ttm_state(state) -> dict:
    """TTM tensors and every parameter's local shape: shows what AutoTP sharded and what not."""
    named = dict(state.model.named_parameters())
    return {
        "ttm": {n: p.detach().float().cpu() for n, p in named.items() if ".ttm." in n},
        "shapes": {n: tuple(p.shape) for n, p in named.items()},
    }


def comm_check(state) -> dict:
    """(tp > 1 only.) An fp32 all-reduce through DeepSpeed's inference_all_reduce, the path AutoTP's row-parallel
    layers use: catches the shared-memory kernel crash (comm_fix.py) coming back."""
    import deepspeed.comm as ds_dist

    device = next(state.model.parameters()).device  # NCCL reduces GPU tensors only
    x = torch.full((4096,), float(state.rank + 1), dtype=torch.float32, device=device)
    ds_dist.inference_all_reduce(x)
    return {"shm_disabled": shm_allreduce_disabled(), "sum": float(x[0]), "uniform": bool((x == x[0]).all())}


RANK_METHODS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (ping, logits, greedy, solve, ttm_state, comm_check)
}
