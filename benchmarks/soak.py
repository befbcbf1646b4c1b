"""Soak run: a steady stream of tasks through a ReplicaPool (the replicas `quasar run` uses) for a
long time, watching for throughput decay, memory growth and error rows.

    .venv/bin/python benchmarks/soak.py                         # 30 minutes, 5-minute windows
    .venv/bin/python benchmarks/soak.py --duration-s 180 --window-s 60 --json soak.json

Reports, per window: tasks, tasks/s, generated tokens/s, error rows; driver and rank-actor RSS
sampled every --sample-s; and the check: last full window's tasks/s within --tolerance (10%) of
the first's. Exit code 0 when the check and "no error rows" hold (2 otherwise; --no-strict: 0).
New tasks every batch (make_tasks with a fresh seed): nothing is cached across batches.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import psutil
import ray

from quasar_dist.data.tasks import make_tasks
from quasar_dist.parallel import ParallelConfig, ReplicaPool


def rank_actor_pids() -> list[int]:
    from ray._private.state import actors  # the GCS actor table: no dashboard needed

    return sorted(info["Pid"] for info in actors().values()
                  if info.get("State") == "ALIVE" and "RankWorker" in info.get("ActorClassName", "") and info.get("Pid"))


def rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


class Sampler(threading.Thread):
    """Driver and rank-actor RSS every `every_s` seconds."""

    def __init__(self, t0: float, every_s: float) -> None:
        super().__init__(daemon=True)
        self.t0, self.every_s = t0, every_s
        self.samples: list[dict] = []
        self.stop = threading.Event()

    def sample(self) -> None:
        actors = {str(pid): rss_mb(pid) for pid in rank_actor_pids()}
        self.samples.append({"t_s": round(time.time() - self.t0, 1), "driver_rss_mb": rss_mb(os.getpid()),
                             "actor_rss_mb": actors})

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.sample()


def windows(events: list[tuple[float, int, int, int]], duration_s: float, window_s: float) -> list[dict]:
    """events: (seconds since start when the batch finished, tasks, error rows, generated tokens)."""
    out = []
    # a trailing remainder under 10% of a window (the last batch overrunning) joins the last window
    n = max(1, int(duration_s // window_s) + (duration_s % window_s >= 0.1 * window_s))
    for w in range(n):
        lo, hi = w * window_s, (duration_s if w == n - 1 else (w + 1) * window_s)
        inside = [e for e in events if lo <= e[0] < hi or (w == n - 1 and e[0] >= hi)]
        span = max(hi - lo, 1e-9)
        tasks = sum(e[1] for e in inside)
        out.append({"window": w, "from_s": lo, "to_s": hi, "full": hi - lo >= window_s - 1e-6,
                    "tasks": tasks, "tasks_per_s": tasks / span, "errors": sum(e[2] for e in inside),
                    "generated_tokens_per_s": sum(e[3] for e in inside) / span})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=1800.0)
    ap.add_argument("--window-s", type=float, default=300.0)
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--mode", default="gsot", choices=["gsot", "cot"])
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--max-steps", type=int, default=6)
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--num-cpus", type=int, default=None)
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)

    reasoning = {"mode": args.mode, "max_new_tokens": args.max_new_tokens, "max_steps": args.max_steps,
                 "max_batch_size": args.batch_size}
    per_round = args.batch_size * args.replicas
    ray.init(address="local", num_cpus=args.num_cpus or max(os.cpu_count() or 1, args.tp * args.replicas + 1),
             include_dashboard=False, log_to_driver=False)
    try:
        with ReplicaPool(args.model, ParallelConfig(tp=args.tp, replicas=args.replicas)) as pool:
            warm = [t["prompt"] for t in make_tasks("mixed", per_round, 10**6)]  # first call builds engines
            pool.solve(warm, reasoning, batch_size=args.batch_size)
            t0 = time.time()
            sampler = Sampler(t0, args.sample_s)
            sampler.sample()
            sampler.start()
            events, seed = [], 0
            while time.time() - t0 < args.duration_s:
                prompts = [t["prompt"] for t in make_tasks("mixed", per_round, seed)]
                seed += 1
                rows = pool.solve(prompts, reasoning, batch_size=args.batch_size)
                events.append((time.time() - t0, len(rows), sum(r.get("error") is not None for r in rows),
                               sum(int(r.get("generated_tokens") or 0) for r in rows)))
            duration = time.time() - t0
            sampler.stop.set()
            sampler.join()
            sampler.sample()
            restarts = sum(g.num_restarts for g in pool.gangs)
    finally:
        ray.shutdown()

    wins = windows(events, duration, args.window_s)
    full = [w for w in wins if w["full"]] or wins
    first, last = full[0]["tasks_per_s"], full[-1]["tasks_per_s"]
    ratio = last / first if first else None
    errors = sum(e[2] for e in events)
    driver = [s["driver_rss_mb"] for s in sampler.samples]
    actor_series = {}
    for s in sampler.samples:
        for pid, mb in s["actor_rss_mb"].items():
            actor_series.setdefault(pid, []).append(mb)
    result = {
        "config": vars(args), "duration_s": duration, "tasks": sum(e[1] for e in events), "error_rows": errors,
        "gang_restarts": restarts, "windows": wins, "last_over_first": ratio,
        "within_tolerance": ratio is not None and abs(ratio - 1) <= args.tolerance,
        "driver_rss_mb": {"first": driver[0], "max": max(driver), "last": driver[-1]},
        "actor_rss_mb": {pid: {"first": v[0], "max": max(x for x in v if x is not None), "last": v[-1]}
                         for pid, v in actor_series.items() if any(x is not None for x in v)},
        "rss_samples": sampler.samples,
    }
    print(f"soak: {result['tasks']} tasks in {duration:.0f}s, {errors} error rows, {restarts} gang restarts")
    print("window      tasks  tasks/s  gen tok/s  errors")
    for w in wins:
        print(f"{w['from_s']:5.0f}-{w['to_s']:<5.0f} {w['tasks']:6d} {w['tasks_per_s']:8.2f} "
              f"{w['generated_tokens_per_s']:10.1f} {w['errors']:7d}{'' if w['full'] else '  (partial)'}")
    print(f"last/first full window: {ratio:.3f} ({'within' if result['within_tolerance'] else 'OUTSIDE'} "
          f"{args.tolerance:.0%})" if ratio is not None else "no full window")
    print(f"driver RSS MB first/max/last: {driver[0]:.0f}/{max(driver):.0f}/{driver[-1]:.0f}")
    for pid, s in result["actor_rss_mb"].items():
        print(f"rank actor {pid} RSS MB first/max/last: {s['first']:.0f}/{s['max']:.0f}/{s['last']:.0f}")
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump(result, fh, indent=2)
    ok = result["within_tolerance"] and errors == 0
    return 0 if ok or not args.strict else 2


if __name__ == "__main__":
    sys.exit(main())
