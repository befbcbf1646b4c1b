"""A replica's resources: one placement group of `tp` bundles, or a one-line ResourceError."""
from __future__ import annotations

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from quasar_dist.util.errors import ResourceError

from .config import ParallelConfig


def rank_bundle(cfg: ParallelConfig, use_gpu: bool) -> dict[str, float]:
    """What one rank actor reserves: its CPUs, one GPU on GPUs, and any custom resources."""
    bundle = {"CPU": cfg.cpus_per_rank, **cfg.resources_per_rank}
    if use_gpu:
        bundle["GPU"] = 1
    return bundle


def reserve_gang(cfg: ParallelConfig, use_gpu: bool) -> PlacementGroup:
    """All `tp` bundles at once (PACK: on one node when they fit), so a gang starts whole or not
    at all. Waits at most placement_timeout_s: an unsatisfiable request fails instead of hanging
    (Ray would otherwise keep it pending forever, waiting for an autoscaler)."""
    bundle = rank_bundle(cfg, use_gpu)
    pg = placement_group([dict(bundle) for _ in range(cfg.tp)], strategy="PACK")
    if pg.wait(timeout_seconds=cfg.placement_timeout_s):
        return pg
    remove_placement_group(pg)
    total = {k: v for k, v in ray.cluster_resources().items() if not k.startswith(("node:", "memory", "object_store"))}
    raise ResourceError(
        f"a replica needs {cfg.tp} x {bundle} (tp={cfg.tp}), not available within "
        f"{cfg.placement_timeout_s:g}s; cluster total: {total}"
    )


def release_gang(pg: PlacementGroup | None) -> None:
    if pg is not None:
        try:
            remove_placement_group(pg)
        except Exception:  # already removed, or the cluster is shutting down
            pass
