"""The one place that works around DeepSpeed's shared-memory all-reduce crash on CPU.

DeepSpeed's CPU backend sends `inference_all_reduce` (the all-reduce after every row-parallel
Linear that AutoTP inserts) through a shared-memory kernel, `torch.ops.deepspeed.
inference_all_reduce_`, whenever the host ISA allows it (`shm_vector_kernel_level` >= 1). That
kernel segfaults here on fp32 tensors (platform.md; reproduced with deepspeed 0.19.8). Cause:
its shared-memory workspace is only mapped when the LOCAL_SIZE env var equals the world size
(DeepSpeed's own launcher sets it, a Ray actor does not), yet the kernel is used regardless
(checked: with LOCAL_SIZE=2 the same 2-rank run does not crash; docs/parallel.md).
With `shm_vector_kernel_level = 0` DeepSpeed falls back to `torch.distributed.all_reduce` over
the process group (gloo), which works. On GPUs the kernel is never built and this is a no-op.

Call `disable_shm_allreduce()` right after `deepspeed.init_distributed` (rendezvous.py does);
tests/test_parallel.py checks that it is applied in every rank and that an fp32 all-reduce through
`inference_all_reduce` gives the right sum in a 2-rank gang.
"""
from __future__ import annotations


def disable_shm_allreduce() -> None:
    import deepspeed.comm.comm as ds_comm

    if ds_comm.cdb is not None:
        ds_comm.cdb.shm_vector_kernel_level = 0  # read by TorchBackend.inference_all_reduce


def shm_allreduce_disabled() -> bool:
    """True when inference_all_reduce cannot reach the shared-memory kernel."""
    import deepspeed.comm.comm as ds_comm

    cdb = ds_comm.cdb
    return cdb is None or getattr(cdb, "shm_comm_op", None) is None or getattr(cdb, "shm_vector_kernel_level", None) == 0
