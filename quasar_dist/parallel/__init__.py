"""Model parallelism on Ray: DeepSpeed AutoTP inside actor gangs (one gang = one model replica),
and a pool of data-parallel replicas. Same code on CPU (gloo) and GPU (NCCL). See docs/parallel.md.

The names below load on first use, so code that needs one Ray-free submodule (training imports
`parallel.comm_fix`) does not import Ray."""
from __future__ import annotations

import importlib

_HOMES = {
    "ParallelConfig": ".config", "shard_with_autotp": ".deepspeed_tp", "GangFailedError": ".gang",
    "ReplicaGang": ".gang", "RankFailure": ".gather", "RankMethodError": ".gather", "ReplicaPool": ".pool",
    "RANK_METHODS": ".rank_methods",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)


__all__ = sorted(_HOMES)
