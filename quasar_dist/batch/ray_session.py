"""Where the job runs: the caller's Ray session if there is one, else the cluster named by
`address` / $RAY_ADDRESS (`ray job submit` sets it), else a local instance started for the run.
Only what this module started or joined is shut down."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import ray

from quasar_dist.util.errors import ResourceError, first_line


def local_num_cpus(requested: int | None, reserved_by_replicas: float) -> int:
    """Enough CPUs for every rank plus one for reading, even on a 2-core machine (ranks mostly
    wait on each other, and over-subscription is fine here)."""
    if requested is not None:
        return requested
    return max(os.cpu_count() or 1, int(reserved_by_replicas + 0.999) + 1)


@contextmanager
def ray_session(address: str | None, *, num_cpus: int, show_worker_logs: bool) -> Iterator[str]:
    """Yields where it runs: "caller", "cluster" or "local"."""
    if ray.is_initialized():  # an embedding program's session: use it, leave it running
        yield "caller"
        return
    target = address or os.environ.get("RAY_ADDRESS")
    common = dict(log_to_driver=show_worker_logs, logging_level=logging.WARNING)
    try:
        if target:
            ray.init(address=target, **common)
        else:
            # "local": a new instance even if `ray start` left a cluster address in /tmp/ray
            # (ray.init() with no address would join that cluster instead)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"Ray at {target}" if target else "a local Ray instance"
        raise ResourceError(f"cannot start or join {where}: {first_line(exc)}") from None
    try:
        yield "cluster" if target else "local"
    finally:
        ray.shutdown()
