"""ReplicaGang: one model replica = `tp` RankWorker actors in one placement group.

The driver (whoever holds the gang: a script, a ReplicaPool thread, a Ray Data UDF actor) sends
every call to all ranks with the same arguments and returns rank 0's result. Failure policy:
- a rank that dies takes the whole gang down (all actors killed, placement group removed); the
  gang is rebuilt and the call retried, at most max_restarts times per call;
- after that, `call` raises GangFailedError and `solve` returns the batch's rows with `error`;
- an error every rank raises alike (RankMethodError) is not retried: it would fail again.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import ray
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from quasar_dist.model.config import ModelLoadError
from quasar_dist.model.folder import read_config, resolve_model_path
from quasar_dist.util.errors import ResourceError, UserFacingError
from quasar_dist.util.typed_config import to_dict

from .config import ParallelConfig, check_shardable
from .gather import RankFailure, RankMethodError, gather_ranks
from .placement import release_gang, remove_named_groups, reserve_gang
from .rank_worker import RankWorker
from .result_rows import error_rows

if TYPE_CHECKING:
    import torch


class GangFailedError(RuntimeError):
    """A gang kept failing after max_restarts rebuilds; the message is the last cause."""


def cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0


class ReplicaGang:
    def __init__(self, model: str | Path, parallel: ParallelConfig | None = None, *,
                 guidance: str | None = None, ttm: str | Path | None = None, placement_name: str = "") -> None:
        self.model_name = str(model)  # a shipped name or a folder readable on every node
        self.ttm = None if ttm is None else str(ttm)  # a TTM adapter folder, or None
        self.parallel = parallel or ParallelConfig()
        self.guidance = guidance
        self.use_gpu = cluster_has_gpus() if self.parallel.use_gpu is None else self.parallel.use_gpu
        self.dtype = self.parallel.dtype_name(self.use_gpu)  # a name: this process needs no torch
        self.num_restarts = 0  # rebuilds over the gang's life (for reports and tests)
        self.busy = False  # a call is in flight
        self.actors: list = []
        self._pg = None
        # Its placement groups are named `placement_name/<n>`. A named gang first removes groups
        # of that name left by an earlier life of its owner (a Ray Data actor Ray restarted).
        self.placement_name = placement_name
        self._closed = False
        # Calls must reach all ranks in the same order: two callers interleaving their
        # submissions would pair different calls across ranks and deadlock the collectives.
        self._lock = threading.Lock()
        self._check_model_locally()
        try:
            self._start()
        except RankMethodError as exc:  # e.g. a missing model folder: surface the one-line cause
            if isinstance(exc.cause, UserFacingError):
                raise exc.cause from None
            raise

    # -- lifecycle ---------------------------------------------------------------------------
    def _check_model_locally(self) -> None:
        """Refuse a tp the model cannot be split by before reserving anything, when this process
        can read the model's config (the ranks check again: the folder may be on workers only)."""
        try:
            folder = resolve_model_path(self.model_name)
            config = read_config(folder)
        except ModelLoadError:
            return
        check_shardable(config, self.parallel.tp)

    def _start(self) -> None:
        if self.placement_name:
            remove_named_groups(self.placement_name + "/")
        self._pg = reserve_gang(self.parallel, self.use_gpu, self._group_name())
        try:
            self.actors = [self._spawn(rank) for rank in range(self.parallel.tp)]
            gather_ranks(self._setup_refs())
        except BaseException:
            self._teardown()
            raise

    def _group_name(self) -> str:
        return f"{self.placement_name}/{self.num_restarts}" if self.placement_name else ""

    def _spawn(self, rank: int):
        cfg = self.parallel
        remote_cls = ray.remote(RankWorker).options(
            num_cpus=cfg.cpus_per_rank,
            num_gpus=1 if self.use_gpu else 0,
            resources=dict(cfg.resources_per_rank) or None,
            max_restarts=0,  # the gang, not Ray, restarts ranks: a lone new rank cannot rejoin
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=self._pg, placement_group_bundle_index=rank
            ),
        )
        return remote_cls.remote(rank, cfg.tp, cfg.threads_per_rank)

    def _setup_refs(self) -> list:
        tp = self.parallel.tp
        if tp == 1:  # a single actor, no process group, no DeepSpeed
            return [self.actors[0].setup.remote(self.model_name, self.guidance, self.dtype, self.use_gpu, None, self.ttm)]
        [(addr, port)] = gather_ranks([self.actors[0].rendezvous_address.remote()])
        nodes = gather_ranks([a.node_id.remote() for a in self.actors])
        refs = []
        for rank, actor in enumerate(self.actors):
            dist = dict(
                master_addr=addr,
                master_port=port,
                local_rank=self._local_rank(nodes, rank),
                backend="nccl" if self.use_gpu else "gloo",
                timeout_s=self.parallel.collective_timeout_s,
            )
            refs.append(actor.setup.remote(self.model_name, self.guidance, self.dtype, self.use_gpu, dist, self.ttm))
        return refs

    def _local_rank(self, nodes: list[str], rank: int) -> int:
        # On GPUs Ray shows each actor only its own GPU, as cuda:0, and DeepSpeed's init_inference
        # calls set_device(LOCAL_RANK): it must be 0. On CPU it is the rank's index on its node.
        return 0 if self.use_gpu else nodes[:rank].count(nodes[rank])

    def _teardown(self) -> None:
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already dead
                pass
        self.actors = []
        release_gang(self._pg)
        self._pg = None

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._teardown()

    # -- calls -------------------------------------------------------------------------------
    def call(self, method: str, *args, all_ranks: bool = False):
        """Run RANK_METHODS[method](*args) on every rank; rank 0's result (every rank's with
        all_ranks). After a rank failure the gang is rebuilt and the call retried, at most
        max_restarts times (a rebuild that fails counts as a failure too)."""
        with self._lock:
            failures = 0
            while True:
                if self._closed:
                    raise GangFailedError("the gang is shut down")
                try:
                    if not self.actors:  # torn down by an earlier failure: rebuild
                        self.num_restarts += 1
                        self._start()
                    results = self._call_once(method, args)
                    return results if all_ranks else results[0]
                except (RankFailure, ResourceError) as exc:
                    self._teardown()
                    failures += 1
                    if failures > self.parallel.max_restarts:
                        raise GangFailedError(f"gave up after {failures} failures: {exc}") from exc

    def _call_once(self, method: str, args: tuple) -> list:
        self.busy = True
        try:
            return gather_ranks([a.call.remote(method, *args) for a in self.actors])
        finally:
            self.busy = False

    def logits(self, input_ids: list[list[int]] | torch.Tensor) -> torch.Tensor:
        ids = input_ids if isinstance(input_ids, list) else input_ids.tolist()
        return self.call("logits", ids)

    def greedy(self, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
        return self.call("greedy", list(prompts), max_new_tokens)

    def solve(self, prompts: list[str], reasoning_cfg=None) -> list[dict]:
        """solve_prompts rows, one per prompt, in order. reasoning_cfg: a ReasoningConfig or its
        fields as a dict. Never raises for a failing gang: the rows of a batch that could not be
        run carry error=<cause> and stop_reason="error"."""
        if dataclasses.is_dataclass(reasoning_cfg):
            reasoning_cfg = to_dict(reasoning_cfg)
        cfg = dict(reasoning_cfg or {})
        seed = int(cfg.get("seed", 0))  # same seed on every rank: sampling must agree
        try:
            return self.call("solve", list(prompts), cfg, seed)
        except (GangFailedError, RankMethodError) as exc:
            return error_rows(prompts, str(exc))

    def __enter__(self) -> "ReplicaGang":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
