"""Model parallelism on Ray: DeepSpeed AutoTP inside actor gangs (one gang = one model replica),
and a pool of data-parallel replicas. Same code on CPU (gloo) and GPU (NCCL). See docs/parallel.md.

The names below load on first use, so code that needs one Ray-free submodule (training imports
`parallel.comm_fix`) does not import Ray."""
from __future__ import annotations

from quasar_dist.util.lazy_names import lazy_getattr

_HOMES = {
    "ParallelConfig": ".config", "shard_with_autotp": ".deepspeed_tp", "GangFailedError": ".gang",
    "ReplicaGang": ".gang", "RankFailure": ".gather", "RankMethodError": ".gather", "ReplicaPool": ".pool",
    "RANK_METHODS": ".rank_methods",
}

__getattr__ = lazy_getattr(__name__, _HOMES)


__all__ = sorted(_HOMES)
