"""Ray actor gangs with DeepSpeed AutoTP, on CPU (gloo): equivalence with tp=1, what AutoTP shards,
the shared-memory all-reduce fix, the replica pool, gang failure and rebuild, placement timeouts.

One local Ray instance and one tp=1 and one tp=2 gang are shared by the whole module: each costs
seconds to start on this machine (platform.md).
"""
import dataclasses
import sys
import threading
import time

import pytest
import ray
import torch

from quasar_dist.model import load_model
from quasar_dist.parallel import ParallelConfig, RankMethodError, ReplicaGang, ReplicaPool
from quasar_dist.data.tasks import read_tasks
from quasar_dist.model import resolve_model_path
from quasar_dist.util.errors import ResourceError
from quasar_dist.util.typed_config import ConfigError

from tolerance import model_bound, rounding_bound

# The shipped model (4 query heads, 2 kv heads: both divide by tp=2) on 20 shipped sample tasks.
PROMPTS = [t["prompt"] for t in read_tasks(resolve_model_path("tiny").parent / "sample_tasks.parquet")[:20]]
# Actors below are defined in this test module, which Ray workers cannot import: ship it by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=8, include_dashboard=False)  # over-subscribed on 2 cores: fine for tests
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir():
    return resolve_model_path("tiny")


@pytest.fixture(scope="module")
def gang1(ray_local, model_dir):
    with ReplicaGang(model_dir, ParallelConfig(tp=1)) as gang:
        yield gang


@pytest.fixture(scope="module")
def gang2(ray_local, model_dir):
    with ReplicaGang(model_dir, ParallelConfig(tp=2)) as gang:
        yield gang


def _ids(vocab: int, bsz: int = 3, t: int = 24) -> list[list[int]]:
    return torch.randint(3, vocab, (bsz, t), generator=torch.Generator().manual_seed(0)).tolist()


def test_tp2_logits_match_tp1_full_and_identical_on_every_rank(gang1, gang2, model_dir):
    local = load_model(model_dir)
    ids = _ids(local.config.vocab_size)
    with torch.no_grad():
        expected = local(torch.tensor(ids))
    tp1 = gang1.logits(ids)
    rank0, rank1 = gang2.call("logits", ids, all_ranks=True)
    assert rank0.shape == expected.shape  # full vocabulary: lm_head is all-reduced, not split
    assert torch.equal(rank0, rank1)
    bound = model_bound(local, expected)  # tp=2 sums each row's halves in another order: rounding only
    assert (tp1 - expected).abs().max() <= bound
    assert (rank0 - tp1).abs().max() <= bound


def test_tp2_greedy_matches_tp1_token_for_token(gang1, gang2):
    assert gang2.greedy(PROMPTS, 12) == gang1.greedy(PROMPTS, 12)


def test_ttm_unsharded_and_identical_on_both_ranks(gang2, model_dir):
    local = dict(load_model(model_dir).named_parameters())
    states = gang2.call("ttm_state", all_ranks=True)
    ttm_names = [n for n in local if ".ttm." in n]
    assert ttm_names and sorted(states[0]["ttm"]) == sorted(ttm_names)
    for state in states:
        for name in ttm_names:
            assert torch.equal(state["ttm"][name], local[name]), name
    # ...while the attention and MLP Linears are split between the ranks, and embeddings are not
    q = "model.layers.0.self_attn.q_proj.weight"
    assert [s["shapes"][q][0] for s in states] == [local[q].shape[0] // 2] * 2
    emb = "model.embed_tokens.weight"
    assert all(s["shapes"][emb] == tuple(local[emb].shape) for s in states)


def test_shm_allreduce_fix_applied_and_fp32_allreduce_works(gang2):
    """Fails (or the rank segfaults and the gang gives up) if comm_fix.py stops being applied."""
    for rank_result in gang2.call("comm_check", all_ranks=True):
        assert rank_result == {"shm_disabled": True, "sum": 3.0, "uniform": True}


def test_unknown_rank_method_is_refused_without_rebuild(gang2):
    restarts = gang2.num_restarts
    with pytest.raises(RankMethodError, match="unknown rank method"):
        gang2.call("__init__")
    assert gang2.num_restarts == restarts


SHORT = {"max_new_tokens": 24, "max_steps": 4}  # gsot, greedy (temperature 0), kept short
LONG = {"max_new_tokens": 64, "max_steps": 8}  # seconds at tp=2: long enough to kill a rank mid-call


# heats lie in (0, tau_max = 2) and pass through the shipped model's 4 layers (width 384)
HEAT_BOUND = rounding_bound(torch.float32, magnitude=2.0, depth=5, width=384)


def _same_rows(rows_a: list[dict], rows_b: list[dict]) -> bool:
    """Error-free and token-for-token the same; latency differs, heats only by float noise."""
    def key(row):
        return {k: v for k, v in row.items() if k not in ("latency_s", "step_temperature")}

    if any(r["error"] is not None for r in rows_a + rows_b):
        return False
    if [key(r) for r in rows_a] != [key(r) for r in rows_b]:
        return False
    heats = [(a, b) for ra, rb in zip(rows_a, rows_b) for a, b in zip(ra["step_temperature"], rb["step_temperature"])]
    return all(abs(a - b) <= HEAT_BOUND for a, b in heats)


@pytest.fixture(scope="module")
def solved_tp1(gang1):
    return gang1.solve(PROMPTS, SHORT)


@pytest.fixture(scope="module")
def solved_tp1_long(gang1):
    return gang1.solve(PROMPTS, LONG)


def test_solve_tp2_matches_tp1_on_20_prompts(gang2, solved_tp1):
    rows = gang2.solve(PROMPTS, SHORT)
    assert len(rows) == len(PROMPTS)
    assert sum(r["generated_tokens"] for r in rows) > 0
    assert _same_rows(rows, solved_tp1)


def test_pool_splits_batches_over_two_replicas_each_task_once(ray_local, model_dir, solved_tp1):
    with ReplicaPool(model_dir, ParallelConfig(tp=1, replicas=2)) as pool:
        rows = pool.solve(PROMPTS, SHORT, batch_size=4)
        log = pool.dispatch_log
    assert sorted(i for i, _ in log) == list(range(5))  # every batch dispatched exactly once
    assert {replica for _, replica in log} == {0, 1}
    assert _same_rows(rows, solved_tp1)  # every task once, in input order


def _kill_rank_mid_call(gang, rank: int, call):
    """Run call() in a thread, kill `rank` while it is in flight, return call()'s result."""
    out = {}
    worker = threading.Thread(target=lambda: out.update(result=call()))
    worker.start()
    deadline = time.monotonic() + 30
    while not gang.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert gang.busy, "the call finished before the kill: make it longer"
    ray.kill(gang.actors[rank])
    worker.join(timeout=180)
    return out["result"]


def test_killed_rank_takes_gang_down_and_batch_completes_after_rebuild(gang2, solved_tp1_long):
    restarts = gang2.num_restarts
    rows = _kill_rank_mid_call(gang2, 1, lambda: gang2.solve(PROMPTS, LONG))
    assert gang2.num_restarts == restarts + 1
    assert _same_rows(rows, solved_tp1_long)  # each task once, same tokens


def test_restarts_exhausted_gives_error_rows_then_gang_recovers(gang2, solved_tp1):
    config = gang2.parallel
    gang2.parallel = dataclasses.replace(config, max_restarts=0)
    try:
        rows = _kill_rank_mid_call(gang2, 0, lambda: gang2.solve(PROMPTS, LONG))
    finally:
        gang2.parallel = config
    assert len(rows) == len(PROMPTS)
    assert all(r["stop_reason"] == "error" and "died" in r["error"] for r in rows)
    assert _same_rows(gang2.solve(PROMPTS[:4], SHORT), solved_tp1[:4])  # rebuilt on the next call


def test_unsatisfiable_placement_is_a_resource_error_within_timeout(ray_local, model_dir):
    for cfg in (
        ParallelConfig(tp=2, cpus_per_rank=5, placement_timeout_s=2),  # 10 CPUs > the cluster's 8
        ParallelConfig(tp=1, resources_per_rank={"no_such_accelerator": 1}, placement_timeout_s=2),
    ):
        start = time.monotonic()
        with pytest.raises(ResourceError) as info:
            ReplicaGang(model_dir, cfg)
        assert time.monotonic() - start < cfg.placement_timeout_s + 5
        assert "\n" not in str(info.value) and f"tp={cfg.tp}" in str(info.value)
    pending = [pg for pg in ray.util.placement_group_table().values() if pg["state"] == "PENDING"]
    assert not pending  # the failed requests were withdrawn, not left to grab resources later


def test_tp_that_does_not_divide_the_heads_is_refused_before_placement(ray_local, model_dir):
    with pytest.raises(ConfigError, match="tp=3 does not divide the model's num_heads=4"):
        ReplicaGang(model_dir, ParallelConfig(tp=3))


@ray.remote(num_cpus=0)
class GangHolder:
    """Like a Ray Data map_batches actor UDF that owns one replica."""

    def __init__(self, model_dir):
        self.gang = ReplicaGang(model_dir, ParallelConfig(tp=1))

    def greedy(self, prompts, max_new_tokens):
        return self.gang.greedy(prompts, max_new_tokens)

    def close(self):
        self.gang.shutdown()


def test_gang_can_be_created_inside_a_ray_actor(ray_local, model_dir, gang1):
    holder = GangHolder.remote(str(model_dir))
    try:
        assert ray.get(holder.greedy.remote(PROMPTS[:3], 5), timeout=120) == gang1.greedy(PROMPTS[:3], 5)
        ray.get(holder.close.remote())
    finally:
        ray.kill(holder)
