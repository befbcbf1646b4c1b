"""Forming a gang's process group from inside its Ray actors (no launcher, no MPI)."""
from __future__ import annotations

import os
import socket
from datetime import timedelta

import ray

from .comm_fix import disable_shm_allreduce


def rendezvous_address() -> tuple[str, int]:
    """Rank 0's node address and a port that was free a moment ago (the usual small race, as
    in Ray Train: the port is picked on the node that binds it, just before binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    return ray.util.get_node_ip_address(), port


def init_process_group(*, rank: int, world_size: int, local_rank: int, master_addr: str,
                       master_port: int, backend: str, timeout_s: float) -> None:
    """Set the torch.distributed env contract in this process, then let DeepSpeed init it.
    timeout_s bounds every collective: a rank whose peer hung raises instead of waiting forever."""
    os.environ.update(
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(local_rank),
    )
    import deepspeed

    deepspeed.init_distributed(
        dist_backend=backend, auto_mpi_discovery=False, verbose=False, timeout=timedelta(seconds=timeout_s)
    )
    disable_shm_allreduce()
