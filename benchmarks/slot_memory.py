"""Slots sized to what prompts keep (docs/gsot.md "Memory"): GSoT with a budget decided in
prefill, at one cache memory, with full-size slots (every slot holds `max_cache_len` entries,
as before) against slots of `kv_slot_entries` (automatic). Prints slots, entries per slot, the
fastest of interleaved runs, generated tokens/s, and whether every row is the same:

    python benchmarks/slot_memory.py --model runs/tiny_long_k20/model --memory-mb 128 --n 200
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from quasar_dist.bench.kv_budget import long_tasks
from quasar_dist.bench.workload import fastest_interleaved
from quasar_dist.model import load_with_tokenizer
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.solve import engine_slots, slot_entries
from quasar_dist.reasoning.task import without_timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--n", type=int, default=200, help="tasks per kind (half at 20, half at 40 distractors)")
    parser.add_argument("--memory-mb", type=float, default=128.0, help="cache_memory_mb of both sides")
    parser.add_argument("--budget", type=float, default=0.35)
    parser.add_argument("--layer", type=int, default=1, help="kv_budget_layer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, tokenizer = load_with_tokenizer(args.model)
    tasks = long_tasks(args.n)
    sized = ReasoningConfig(kv_budget=args.budget, kv_budget_layer=args.layer, cache_memory_mb=args.memory_mb)
    full = replace(sized, kv_slot_entries=model.config.max_sequence_length)
    configs = {"full_slots": full, "sized_slots": sized}
    runs = fastest_interleaved(model, tokenizer, tasks, configs, repeats=args.repeats)
    report = {"model": args.model, "tasks": len(tasks), "cache_memory_mb": args.memory_mb, "kv_budget": args.budget,
              "kv_budget_layer": args.layer, "repeats": args.repeats}
    for name, config in configs.items():
        run = runs[name]
        report[name] = {"slots": engine_slots(model, config), "entries_per_slot": slot_entries(model.config, config),
                        "wall_s": round(run.wall_s, 3), "generated_tok_s": round(run.generated_tokens / run.wall_s, 1),
                        "accuracy": run.accuracy}
    report["identical_rows"] = sum(without_timing(a) == without_timing(b)
                                   for a, b in zip(runs["full_slots"].rows, runs["sized_slots"].rows))
    report["speedup"] = round(runs["full_slots"].wall_s / runs["sized_slots"].wall_s, 3)
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
