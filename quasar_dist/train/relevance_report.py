"""Held-out check that temperatures mean something (issue #14), on distractor tasks:

- temperature AUROC, relevant vs distractor prompt tokens, per layer and for the layer mean
  (bench/relevance.py), at each distractor count;
- greedy CoT accuracy with the full cache (guidance off and the checkpoint's guidance);
- the same greedy decoding with all but the warmest `kv_budget` of the prompt's entries evicted
  right after prefill (the first token and the last 8 kept, as in training; GSoT with nothing
  else on: no backtracking, no probes), and the share of prompt entries it kept, per budget.

    python -m quasar_dist.train.relevance_report [--model tiny] [--n 100] [--distractors 0 10 20 40]
                                                 [--kv-budget 0.25 0.35] [--json docs/relevance.json]
"""
from __future__ import annotations

import argparse
import json

import torch

from quasar_dist.bench.relevance import relevance_auroc
from quasar_dist.data.answers import answers_match
from quasar_dist.data.tasks import make_tasks
from quasar_dist.model import TextTokenizer, load_model, resolve_model_path
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.solve import solve_prompts

from .heldout import HELDOUT_SEED


def accuracy_and_kept(model, tokenizer, tasks: list[dict], config: ReasoningConfig) -> tuple[float, float]:
    rows = solve_prompts(model, tokenizer, [t["prompt"] for t in tasks], config)
    right = sum(answers_match(r["answer"], t["answer"]) for r, t in zip(rows, tasks))
    prompt = sum(r["prompt_tokens"] for r in rows)
    evicted = sum(r["kv_evicted"] for r in rows)
    return right / len(tasks), 1.0 - evicted / max(1, prompt)


def evicting_config(kv_budget: float) -> ReasoningConfig:
    """GSoT with only the prompt budget on: greedy, no backtracking, no trial probes; the
    protected entries are the ones training protects (the first token, the last 8)."""
    return ReasoningConfig(mode="gsot", kv_budget=kv_budget, backtrack_below=0.0, max_new_tokens=128,
                           max_batch_size=64, sink_tokens=1, recent_tokens=8)


def relevance_report(model_name: str = "tiny", n: int = 100, distractors=(0, 10, 20, 40), kv_budgets=(0.25,),
                     seed: int = HELDOUT_SEED) -> dict:
    folder = resolve_model_path(model_name)
    model = load_model(folder)
    tokenizer = TextTokenizer.from_folder(folder, model.config)
    guidance = model.config.guidance
    report = {"model": str(model_name), "tasks": n, "seed": seed, "split": "test", "kv_budgets": list(kv_budgets),
              "ttm_context": model.config.ttm_context, "rows": []}
    for kind in ("arith", "logic"):
        for d in distractors:
            tasks = make_tasks(kind, n, seed, "test", distractors=d)
            row = {"kind": kind, "distractors": d}
            row["cot_off"], _ = accuracy_and_kept(model, tokenizer, tasks, ReasoningConfig(mode="cot", guidance="off", max_new_tokens=128, max_batch_size=64))
            row[f"cot_{guidance}"], _ = accuracy_and_kept(model, tokenizer, tasks, ReasoningConfig(mode="cot", guidance=guidance, max_new_tokens=128, max_batch_size=64))
            for budget in kv_budgets:
                row[f"evicted_accuracy_{budget}"], row[f"kept_fraction_{budget}"] = accuracy_and_kept(
                    model, tokenizer, tasks, evicting_config(budget))
            if d > 0:
                row |= relevance_auroc(model, tokenizer, tasks)
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Temperature AUROC and budgeted eviction on held-out distractor tasks")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--distractors", type=int, nargs="+", default=[0, 10, 20, 40])
    parser.add_argument("--kv-budget", type=float, nargs="+", default=[0.25])
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    report = relevance_report(args.model, args.n, args.distractors, args.kv_budget, args.seed)
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
