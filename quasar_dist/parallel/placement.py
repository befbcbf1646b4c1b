"""A replica's resources: one placement group of `tp` bundles, or a one-line ResourceError.

Groups are named (`name`): Ray removes a group with its creator only when that creator exits
cleanly. A Ray Data actor that the stream kills (a failed run) or that Ray restarts leaves its
group holding CPUs for the rest of the driver's life (measured on Ray 2.60: a failed run in a
caller's session kept 2 of 6 CPUs; three such runs left no CPU for the next run's read tasks
and its stream hung). Whoever knows the names removes what is left: remove_named_groups.
"""
from __future__ import annotations

import ray
from ray.util.placement_group import PlacementGroup, placement_group, placement_group_table, remove_placement_group

from quasar_dist.util.errors import ResourceError

from .config import ParallelConfig


def rank_bundle(cfg: ParallelConfig, use_gpu: bool) -> dict[str, float]:
    """What one rank actor reserves: its CPUs, one GPU on GPUs, and any custom resources."""
    bundle = {"CPU": cfg.cpus_per_rank, **cfg.resources_per_rank}
    if use_gpu:
        bundle["GPU"] = 1
    return bundle


def reserve_gang(cfg: ParallelConfig, use_gpu: bool, name: str = "") -> PlacementGroup:
    """All `tp` bundles at once (PACK: on one node when they fit), so a gang starts whole or not
    at all. Waits at most placement_timeout_s: an unsatisfiable request fails instead of hanging
    (Ray would otherwise keep it pending forever, waiting for an autoscaler)."""
    bundle = rank_bundle(cfg, use_gpu)
    pg = placement_group([dict(bundle) for _ in range(cfg.tp)], strategy="PACK", name=name)
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


def remove_named_groups(prefix: str) -> int:
    """Remove every live placement group whose name starts with `prefix` (not empty); how many."""
    if not prefix:
        raise ValueError("remove_named_groups needs a name prefix")
    removed = 0
    for group_id, info in placement_group_table().items():
        if info["state"] != "REMOVED" and info["name"].startswith(prefix):
            release_gang(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))
            removed += 1
    return removed
