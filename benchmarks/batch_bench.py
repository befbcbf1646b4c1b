"""Batch job layer benchmark (not a test). Two questions:

1. Is the driver's memory bounded? Peak RSS of the `quasar run` driver for 2,000 vs 20,000
   tasks, same batch size, with a cheap setting (CoT, 1 new token) so 20,000 tasks finish in
   minutes. Target: within +20%.
2. What does the job layer cost? tasks/s and generated tokens/s of `quasar run` vs the engine
   alone (solve_prompts in a child process at the ranks' niceness, same model, settings,
   batches, 1 torch thread like a rank). End to end (Ray start and model load included) and steady state (from the first
   committed batch to the last, vs the engine's batches after its first). Target: steady-state
   overhead <= 15%.

    .venv/bin/python benchmarks/batch_bench.py [--model tiny] [--quick] [--json out.json]

Each `quasar run` is a subprocess with its own local Ray instance. Numbers depend on machine
load: rerun on a quiet machine before drawing conclusions.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parent.parent
QUASAR = REPO / ".venv" / "bin" / "quasar"
RAY_WORKER_NICENESS = 15  # Ray's default for worker processes (ranks included) on Linux


def quasar_run(tasks: Path, out: Path, config: dict, workdir: Path) -> dict:
    """One `quasar run` subprocess; returns its report plus the driver's peak RSS."""
    cfg_path = workdir / f"{out.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    proc = subprocess.run([str(QUASAR), "run", "--config", str(cfg_path), "--input", str(tasks), "--output", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"quasar run failed:\n{proc.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    report["process_wall_s"] = time.perf_counter() - started
    return report


def steady_state(out: Path) -> dict:
    """Rates between the first and the last committed batch (startup excluded)."""
    table = pq.read_table(sorted((out / "results").glob("part-*.parquet")), columns=["finished_at", "generated_tokens"])
    finished = sorted(table.column("finished_at").to_pylist())
    first, last = finished[0], finished[-1]
    after_first = [t for t in finished if t > first]
    rows = table.to_pylist()
    tokens = sum(r["generated_tokens"] for r in rows if r["finished_at"] > first)
    span = max(last - first, 1e-9)
    return {"tasks_per_s": len(after_first) / span, "generated_tokens_per_s": tokens / span, "span_s": span}


def engine_alone(model: str, prompts: list[str], gsot: dict, mode: str, batch_size: int) -> dict:
    """solve_prompts in this process on the same batches a replica would get. Steady state =
    batches after the first (the first pays for warm-up, as the job's first batch does)."""
    import torch

    from quasar_dist.model import TextTokenizer, load_model, resolve_model_path
    from quasar_dist.reasoning.config import ReasoningConfig
    from quasar_dist.reasoning.solve import build_engine, solve_prompts
    from quasar_dist.util.typed_config import from_dict

    torch.set_num_threads(1)  # a rank with cpus_per_rank=1 runs with one thread
    loaded = load_model(model).eval()
    tokenizer = TextTokenizer.from_folder(resolve_model_path(model), loaded.config)
    config = from_dict(ReasoningConfig, {**gsot, "mode": mode})
    engine = build_engine(loaded, tokenizer, config)
    batches = []  # (seconds, tasks, generated tokens)
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            started = time.perf_counter()
            rows = solve_prompts(loaded, tokenizer, prompts[i:i + batch_size], config, engine=engine)
            batches.append((time.perf_counter() - started, len(rows), sum(r["generated_tokens"] for r in rows)))
    wall, steady = sum(b[0] for b in batches), batches[1:] or batches
    steady_s = sum(b[0] for b in steady)
    return {
        "tasks_per_s": len(prompts) / wall,
        "generated_tokens_per_s": sum(b[2] for b in batches) / wall,
        "steady_tasks_per_s": sum(b[1] for b in steady) / steady_s,
        "steady_generated_tokens_per_s": sum(b[2] for b in steady) / steady_s,
        "wall_s": wall,
    }


def memory_bench(model: str, sizes: list[int], workdir: Path) -> dict:
    from quasar_dist.data.tasks import make_tasks, write_tasks

    cheap = {"model": model, "mode": "cot", "batch_size": 200, "flush_rows": 2000, "plots": False,
             "progress_interval_s": 0, "gsot": {"max_new_tokens": 1, "max_batch_size": 32}}
    tasks = make_tasks("arith", max(sizes), seed=7)
    out = {}
    for n in sizes:
        path = write_tasks(tasks[:n], workdir / f"tasks_{n}.parquet")
        report = quasar_run(path, workdir / f"mem_{n}", cheap, workdir)
        out[n] = {"driver_peak_rss_mb": report["driver_peak_rss_mb"], "wall_s": report["wall_s"]}
        print(f"memory: {n:>6} tasks  driver peak RSS {report['driver_peak_rss_mb']:.0f} MB  ({report['wall_s']:.0f} s)", flush=True)
    small, large = out[min(sizes)]["driver_peak_rss_mb"], out[max(sizes)]["driver_peak_rss_mb"]
    return {"runs": out, "growth": large / small - 1}


def engine_alone_niced(model: str, path: Path, gsot: dict, batch_size: int) -> dict:
    """engine_alone in a child process at Ray's worker niceness (15 on Linux): ranks run at that
    priority, and on a shared machine an un-niced baseline would win the CPU from them."""
    args = [sys.executable, __file__, "--engine-alone", str(path), "--model", model,
            "--gsot", json.dumps(gsot), "--batch-size", str(batch_size)]
    proc = subprocess.run(args, capture_output=True, text=True, preexec_fn=lambda: os.nice(RAY_WORKER_NICENESS))
    if proc.returncode != 0:
        sys.exit(f"engine alone failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def overhead_once(model: str, tasks: list[dict], path: Path, workdir: Path, batch_size: int, gsot: dict, rep: int) -> dict:
    engine = engine_alone_niced(model, path, gsot, batch_size)
    out = workdir / f"overhead_run_{rep}"
    report = quasar_run(path, out, {"model": model, "batch_size": batch_size, "gsot": gsot, "progress_interval_s": 0}, workdir)
    steady = steady_state(out)
    print(f"[{rep}] engine alone: {engine['steady_tasks_per_s']:.2f} tasks/s, {engine['steady_generated_tokens_per_s']:.0f} gen tok/s"
          f" (steady) | quasar run: {steady['tasks_per_s']:.2f} tasks/s, {steady['generated_tokens_per_s']:.0f} gen tok/s"
          f" (steady); {report['tasks_per_s']:.2f} tasks/s end to end ({report['wall_s']:.0f} s)", flush=True)
    return {"engine": engine, "run_end_to_end": {k: report[k] for k in ("tasks_per_s", "generated_tokens_per_s", "wall_s")},
            "run_steady": steady}


def overhead_bench(model: str, num_tasks: int, workdir: Path, repeats: int) -> dict:
    """Engine alone and quasar run, alternated `repeats` times; the best of each is compared (the
    machine's load only ever slows a measurement down)."""
    from quasar_dist.data.tasks import make_tasks, write_tasks

    batch_size, gsot = 32, {"max_batch_size": 8}
    tasks = make_tasks("mixed", num_tasks, seed=11)
    path = write_tasks(tasks, workdir / "tasks_overhead.parquet")
    reps = [overhead_once(model, tasks, path, workdir, batch_size, gsot, rep) for rep in range(repeats)]
    best_engine = max(r["engine"]["steady_tasks_per_s"] for r in reps)
    best_engine_tok = max(r["engine"]["steady_generated_tokens_per_s"] for r in reps)
    best_run = max(r["run_steady"]["tasks_per_s"] for r in reps)
    best_run_tok = max(r["run_steady"]["generated_tokens_per_s"] for r in reps)
    best_e2e = max(r["run_end_to_end"]["tasks_per_s"] for r in reps)
    return {
        "tasks": num_tasks,
        "batch_size": batch_size,
        "repeats": reps,
        "best_engine_steady_tasks_per_s": best_engine,
        "best_run_steady_tasks_per_s": best_run,
        "best_run_end_to_end_tasks_per_s": best_e2e,
        "overhead_steady_tasks": 1 - best_run / best_engine,
        "overhead_steady_tokens": 1 - best_run_tok / best_engine_tok,
        "overhead_end_to_end_tasks": 1 - best_e2e / max(r["engine"]["tasks_per_s"] for r in reps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--quick", action="store_true", help="200 vs 2,000 tasks and 96 overhead tasks (a smoke run)")
    parser.add_argument("--only", choices=["memory", "overhead"], default=None)
    parser.add_argument("--repeats", type=int, default=3, help="engine/run pairs in the overhead comparison")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--engine-alone", default=None, help=argparse.SUPPRESS)  # child mode (engine_alone_niced)
    parser.add_argument("--gsot", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_alone:
        prompts = pq.read_table(args.engine_alone, columns=["prompt"]).column("prompt").to_pylist()
        print(json.dumps(engine_alone(args.model, prompts, json.loads(args.gsot), "gsot", args.batch_size)))
        return
    workdir = Path(tempfile.mkdtemp(prefix="batch_bench_"))
    try:
        sizes = [200, 2000] if args.quick else [2000, 20000]
        results = {"model": args.model}
        if args.only in (None, "memory"):
            results["memory"] = memory_bench(args.model, sizes, workdir)
        if args.only in (None, "overhead"):
            results["overhead"] = overhead_bench(args.model, 96 if args.quick else 256, workdir, args.repeats)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
