"""Model parallelism on Ray: DeepSpeed AutoTP inside actor gangs (one gang = one model replica),
and a pool of data-parallel replicas. Same code on CPU (gloo) and GPU (NCCL). See docs/parallel.md."""
from .config import ParallelConfig
from .deepspeed_tp import shard_with_autotp
from .gang import GangFailedError, ReplicaGang
from .gather import RankFailure, RankMethodError
from .pool import ReplicaPool
from .rank_methods import RANK_METHODS

__all__ = [
    "GangFailedError", "ParallelConfig", "RANK_METHODS", "RankFailure", "RankMethodError", "ReplicaGang",
    "ReplicaPool", "shard_with_autotp",
]
