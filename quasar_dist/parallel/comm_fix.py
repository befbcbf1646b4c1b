"""The one place that works around DeepSpeed's shared-memory all-reduce crash on CPU.

DeepSpeed's CPU backend sends `inference_all_reduce` (the all-reduce after every row-parallel
Linear that AutoTP inserts) through a shared-memory kernel, `torch.ops.deepspeed.
inference_all_reduce_`, whenever the host ISA allows it (`shm_vector_kernel_level` >= 1). That
kernel segfaults here on fp32 tensors (platform.md; reproduced on deepspeed 0.19.8). The likely
cause: its shared-memory workspace is only mapped when the LOCAL_SIZE env var equals the world
size (DeepSpeed's own launcher sets it, a Ray actor does not), but the kernel is used regardless.
With `shm_vector_kernel_level = 0` DeepSpeed falls back to `torch.distributed.all_reduce` over
the process group (gloo), which works. On GPUs the kernel is never built and this is a no-op.

Call `disable_shm_allreduce()` right after `deepspeed.init_distributed` (rendezvous.py does);
tests/test_parallel.py checks that it is applied in every rank and that an fp32 all-reduce through
`inference_all_reduce` gives the right sum in a 2-rank gang.
"""
from __future__ import annotations


def disable_shm_allreduce() -> None:
    import deepspeed.comm.comm as ds_comm

    if ds_comm.cdb is not None and hasattr(ds_comm.cdb, "shm_vector_kernel_level"):
        ds_comm.cdb.shm_vector_kernel_level = 0


def shm_allreduce_disabled() -> bool:
    import deepspeed.comm.comm as ds_comm

    return ds_comm.cdb is None or getattr(ds_comm.cdb, "shm_vector_kernel_level", 0) == 0
