"""Throughput of the parallel layer on this machine: replicas=2 vs 1 and tp=2 vs 1 (not a test).

    .venv/bin/python benchmarks/parallel_bench.py [--model PATH] [--tasks 32] [--json out.json]

Each layout runs the same GSoT workload (solve_prompts inside the ranks) through a ReplicaPool,
after a warm-up batch; every rank gets one CPU and one torch thread. Without --model a random
toy model (d=256, 4 layers, 8 heads) is written to a temp dir: speed does not depend on the
weights being trained, only on the shapes and the number of generated tokens (which this reports).
Set-up time (actors, imports, rendezvous, AutoTP) is reported separately from the timed run.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import ray

from quasar_dist.parallel import ParallelConfig, ReplicaPool
from quasar_dist.parallel.toy_model import toy_prompts, write_toy_model

LAYOUTS = [dict(tp=1, replicas=1), dict(tp=1, replicas=2), dict(tp=2, replicas=1)]


def run_layout(model: str, layout: dict, prompts: list[str], reasoning: dict, batch_size: int) -> dict:
    start = time.perf_counter()
    with ReplicaPool(model, ParallelConfig(cpus_per_rank=1, **layout)) as pool:
        setup_s = time.perf_counter() - start
        for gang in pool.gangs:  # warm every replica: its first call builds the engine and cache
            gang.solve(prompts[:1], reasoning)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        rows = pool.solve(prompts, reasoning, batch_size=batch_size)
        wall_s = time.perf_counter() - start
    generated = sum(r["generated_tokens"] for r in rows)
    return {
        **layout,
        "setup_s": round(setup_s, 2),
        "wall_s": round(wall_s, 2),
        "tasks_per_s": round(len(rows) / wall_s, 3),
        "generated_tokens_per_s": round(generated / wall_s, 1),
        "generated_tokens": generated,
        "errors": sum(r["error"] is not None for r in rows),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: a random toy model)")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--mode", choices=["gsot", "cot"], default="gsot")
    parser.add_argument("--guidance", choices=["scale", "bias", "off"], default=None,
                        help="default: the model's for gsot, off for cot")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    reasoning = {"mode": args.mode, "guidance": args.guidance, "max_new_tokens": args.max_new_tokens,
                 "max_steps": 8, "max_batch_size": args.batch_size}
    prompts = toy_prompts(args.tasks, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(write_toy_model(tmp, hidden_size=256, num_layers=4, num_heads=8,
                                                  num_kv_heads=4, intermediate_size=768, ttm_dim=32))
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        try:
            results = [run_layout(model, layout, prompts, reasoning, args.batch_size) for layout in LAYOUTS]
        finally:
            ray.shutdown()
    report = {"cpu_count": os.cpu_count(), "tasks": args.tasks, "reasoning": reasoning, "layouts": results,
              "note": "load_1min is the machine's load average: other jobs share these cores"}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
