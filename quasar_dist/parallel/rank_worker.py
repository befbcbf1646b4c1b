"""One tensor-parallel rank: a Ray actor that loads the model, joins its gang's process group,
shards the model with AutoTP, and then runs named methods (rank_methods.py) on request.

The class is plain Python; gang.py wraps it with `ray.remote` and pins each instance to one
bundle of the gang's placement group. The process that does so (a replica's stage actor) never
needs torch, so this module imports it only inside the rank's own methods.
"""
from __future__ import annotations


class RankWorker:
    def __init__(self, rank: int, tp: int, num_threads: int) -> None:
        # Ray sets OMP_NUM_THREADS from num_cpus, but torch may already have its pool; actors
        # sharing a node must not each grab every core.
        import torch

        torch.set_num_threads(num_threads)
        self.rank, self.tp = rank, tp
        self.model = self.tokenizer = None
        self.engines: dict = {}  # reasoning engines by cache shape, reused across batches

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def rendezvous_address(self) -> tuple[str, int]:
        """Called on rank 0 only: its node's address and a free port there."""
        from .rendezvous import rendezvous_address

        return rendezvous_address()

    def setup(self, model_name: str, guidance: str | None, dtype: str, use_gpu: bool,
              dist: dict | None, ttm: str | None = None) -> None:
        """Load the model (with the TTM adapter `ttm` if given); with `dist` (tp > 1), join the
        process group and shard it.
        All ranks must call this concurrently: the process group waits for all of them."""
        from quasar_dist.model import TextTokenizer, load_model, resolve_model_path
        from quasar_dist.model.registry import DTYPES

        model = load_model(model_name, guidance=guidance, dtype=dtype, ttm=ttm)
        self.tokenizer = TextTokenizer.from_folder(resolve_model_path(model_name), model.config)
        if dist is not None:
            from .config import check_shardable
            from .deepspeed_tp import shard_with_autotp
            from .rendezvous import init_process_group

            check_shardable(model.config, self.tp)  # before the rendezvous: fail fast, on all ranks
            init_process_group(rank=self.rank, world_size=self.tp, **dist)
            model = shard_with_autotp(model, self.tp, DTYPES[dtype])
        elif use_gpu:
            model = model.to("cuda")
        self.model = model.eval()

    def call(self, method: str, *args):
        """Run a whitelisted method. no_grad, not inference_mode: gloo collectives fail under
        inference_mode (platform.md)."""
        import torch

        from .rank_methods import RANK_METHODS

        fn = RANK_METHODS.get(method)
        if fn is None:
            raise ValueError(f"unknown rank method {method!r} (allowed: {', '.join(RANK_METHODS)})")
        with torch.no_grad():
            return fn(self, *args)
