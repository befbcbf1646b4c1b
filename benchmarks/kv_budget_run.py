"""The `kv_budget_curve` section of `quasar bench` alone, on any model folder (a model in
training need not be shipped to be measured):

    python benchmarks/kv_budget_run.py --model runs/tiny_long/model --n 50 --json docs/kv_budget.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from quasar_dist.bench.kv_budget import kv_budget_curve, long_tasks
from quasar_dist.model import load_with_tokenizer
from quasar_dist.reasoning.config import ReasoningConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--n", type=int, default=50, help="tasks per kind (half at 20, half at 40 distractors)")
    parser.add_argument("--json", default="docs/kv_budget.json")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    parser.add_argument("--score", choices=["max", "mean"], default="max", help="ttm's combination over layers (kv_score)")
    parser.add_argument("--prefill-layer", type=int, default=1, help="ttm_prefill decides after this many layers")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, tokenizer = load_with_tokenizer(args.model)
    tasks = long_tasks(args.n)
    base = ReasoningConfig(max_new_tokens=128, max_batch_size=64, kv_score=args.score)
    rows = kv_budget_curve(model, tokenizer, tasks, base, Path(args.json).with_suffix(".png"), budgets=tuple(args.budgets),
                           prefill_layer=args.prefill_layer)
    for r in rows:
        print(f"{r['method']:>9} {r['budget']:>5} acc {r['accuracy']:.3f} MFLOP/task {r['flops_per_task'] / 1e6:8.2f} "
              f"wall {r['wall_s']:6.2f}s kept {r['kv_kept_fraction']:.3f} by kind {r['accuracy_by_kind']}")
    Path(args.json).write_text(json.dumps({"model": args.model, "tasks": len(tasks), "kv_score": args.score,
                                           "prefill_layer": args.prefill_layer, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
