"""Process-group set-up for training: one process (RANK unset) or several ranks launched by
`deepspeed`/`torchrun` (RANK, WORLD_SIZE, MASTER_ADDR/PORT set by the launcher)."""
from __future__ import annotations

import os
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_training_distributed() -> tuple[int, int]:
    """gloo on CPU, NCCL on GPU. Returns (rank, world_size)."""
    import deepspeed
    import torch

    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    from quasar_dist.parallel.comm_fix import disable_shm_allreduce

    disable_shm_allreduce()
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
