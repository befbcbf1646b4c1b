"""GSoT (the shipped model's defaults, as `quasar run` runs them) against CoT, timed as paired,
interleaved runs in one process: the ratio pair by pair, its median and quartiles. On a shared
machine whose speed drifts by 1.5x within minutes, a median of pairs says more than the bench's
"fastest of 5" (docs/benchmarks.md, session 13).

    .venv/bin/python benchmarks/gsot_cot_pairs.py [--pairs 15] [--set short|long|both] [--one-off] [--json OUT]

short: the bench's 200 held-out tasks (seed 9001, 100 per kind); long: its 200 distractor tasks
(D = 20 / 40). Engine slots as `quasar run` sizes them. Each side keeps one engine across its
runs, as a replica does (`quasar run`); --one-off builds one per call instead, as a bare
`solve_prompts(...)` does (the cache is allocated and zeroed inside the timing). Prints one JSON
object.
"""
from __future__ import annotations

import argparse
import json
import statistics

from quasar_dist.bench.kv_budget import long_tasks
from quasar_dist.bench.main import shipped_gsot
from quasar_dist.bench.workload import load_workload, run_reasoning
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.solve import build_engine, engine_slots


def quartiles(values: list[float]) -> list[float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return [round(q[0], 3), round(statistics.median(values), 3), round(q[2], 3)]


def paired(model, tokenizer, tasks, gsot: ReasoningConfig, cot: ReasoningConfig, pairs: int, one_off: bool) -> dict:
    engines = {}
    if not one_off:
        engines = {"cot": build_engine(model, tokenizer, cot), "gsot": build_engine(model, tokenizer, gsot)}
    run_reasoning(model, tokenizer, tasks, cot, engine=engines.get("cot"))  # warm-up of both paths
    run_reasoning(model, tokenizer, tasks, gsot, engine=engines.get("gsot"))
    ratios, cot_s, gsot_s = [], [], []
    for _ in range(pairs):
        c = run_reasoning(model, tokenizer, tasks, cot, engine=engines.get("cot"))
        g = run_reasoning(model, tokenizer, tasks, gsot, engine=engines.get("gsot"))
        ratios.append(c.wall_s / g.wall_s)
        cot_s.append(c.wall_s)
        gsot_s.append(g.wall_s)
    return {"tasks": len(tasks), "speed_gsot_over_cot": quartiles(ratios), "wall_s_cot": quartiles(cot_s),
            "wall_s_gsot": quartiles(gsot_s), "accuracy_cot": c.accuracy, "accuracy_gsot": g.accuracy,
            "compute_reduction": round(1.0 - g.flops / c.flops, 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--set", choices=("short", "long", "both"), default="both")
    parser.add_argument("--one-off", action="store_true", help="a new engine per call (bare solve_prompts)")
    parser.add_argument("--json")
    args = parser.parse_args()
    model, tokenizer, short = load_workload("tiny", 100)
    batch = engine_slots(model, ReasoningConfig())
    gsot = shipped_gsot(model.config, batch)
    cot = ReasoningConfig(mode="cot", max_new_tokens=gsot.max_new_tokens, max_steps=gsot.max_steps, max_batch_size=batch)
    out = {"engine": "one per call" if args.one_off else "one per side, reused"}
    if args.set in ("short", "both"):
        out["short"] = paired(model, tokenizer, short, gsot, cot, args.pairs, args.one_off)
    if args.set in ("long", "both"):
        out["long"] = paired(model, tokenizer, long_tasks(100), gsot, cot, args.pairs, args.one_off)
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
