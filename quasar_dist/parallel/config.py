"""How a model is laid out over Ray actors: tensor-parallel ranks per replica, replicas per pool."""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from typing import Literal

from quasar_dist.util.typed_config import ConfigError

# No torch here: the stage actors build gangs from this config and never import it (~2 s of CPU).


@dataclass(kw_only=True, slots=True)
class ParallelConfig:
    tp: int = 1
    """Tensor-parallel ranks per replica: one Ray actor each (one GPU each on GPUs)."""
    replicas: int = 1
    """Data-parallel copies of the model, one actor gang each (used by ReplicaPool)."""
    placement_timeout_s: float = 60.0
    """How long a replica waits for its placement group before failing with a ResourceError."""
    max_restarts: int = 2
    """Rebuilds of a failed gang per batch; after that the batch's rows come back with `error` set."""
    cpus_per_rank: float | None = None
    """CPUs reserved per rank actor; its torch thread count is this, rounded down, at least 1.
    None = this machine's cores shared by every rank of the run (cores // (tp * replicas)): what
    a local run should use; on a cluster whose nodes differ from the driver's machine, set it."""
    use_gpu: bool | None = None
    """One GPU per rank and NCCL; None = use GPUs when the Ray cluster has any."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weight dtype inside the ranks; auto = bfloat16 on GPU, float32 on CPU."""
    collective_timeout_s: float = 600.0
    """A rank waiting longer than this in a collective (a peer hung) raises instead of hanging."""
    resources_per_rank: dict[str, float] = field(default_factory=dict)
    """Extra custom Ray resources reserved per rank bundle, e.g. {"accelerator_type:H100": 0.001}."""

    def __post_init__(self) -> None:
        for name in ("tp", "replicas"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cpus_per_rank is None:  # this machine's cores, shared by every rank of the run
            self.cpus_per_rank = float(max(1, (os.cpu_count() or 1) // (self.tp * self.replicas)))
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        for name in ("placement_timeout_s", "collective_timeout_s", "cpus_per_rank"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def threads_per_rank(self) -> int:
        return max(1, int(self.cpus_per_rank))

    def dtype_name(self, use_gpu: bool) -> str:
        """The ranks' weight dtype, by name (model.registry.DTYPES)."""
        if self.dtype == "auto":
            return "bfloat16" if use_gpu else "float32"
        return self.dtype


def check_shardable(cfg, tp: int) -> None:
    """Heads are split whole, so both head counts of the ModelConfig must divide by tp (AutoTP
    would fail less clearly)."""
    for name in ("num_heads", "num_kv_heads"):
        if getattr(cfg, name) % tp:
            raise ConfigError(f"tp={tp} does not divide the model's {name}={getattr(cfg, name)}")
