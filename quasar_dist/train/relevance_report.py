"""Held-out check that temperatures mean something (issue #14), on distractor tasks:

- temperature AUROC, relevant vs distractor prompt tokens, per layer and for the layer mean
  (bench/relevance.py), at each distractor count;
- greedy CoT accuracy with the full cache (guidance off and the checkpoint's guidance);
- the same greedy decoding with all but the warmest `kv_budget` of the prompt's entries evicted
  right after prefill (the first token and the last 8 kept, as in training; GSoT with nothing
  else on: no backtracking, no probes), and the share of prompt entries it kept, per budget;
  the same with `kv_keep_above` thresholds instead of budgets; with `--prefill-layer L` both
  are decided inside prefill after L layers (Algorithm 1), and `flops_ratio_*` is each
  setting's counted FLOPs over CoT's with the full cache.

    python -m quasar_dist.train.relevance_report [--model tiny] [--n 100] [--distractors 0 10 20 40]
                                                 [--kv-budget 0.25 0.35] [--keep-above 1.0]
                                                 [--prefill-layer 1] [--json docs/relevance.json]
                                                 [--png docs/relevance.png]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from quasar_dist.bench.kv_budget import PREFILL, evicting
from quasar_dist.bench.relevance import relevance_auroc
from quasar_dist.bench.relevance_plot import plot_relevance
from quasar_dist.bench.workload import run_reasoning
from quasar_dist.data.tasks import make_tasks
from quasar_dist.model import load_with_tokenizer
from quasar_dist.reasoning.config import ReasoningConfig

from .heldout import HELDOUT_SEED


def measure(model, tokenizer, tasks: list[dict], config: ReasoningConfig) -> tuple[float, float, float]:
    """(accuracy, share of prompt entries kept, counted FLOPs per task)."""
    result = run_reasoning(model, tokenizer, tasks, config)
    prompt = sum(r["prompt_tokens"] for r in result.rows)
    evicted = sum(r["kv_evicted"] for r in result.rows)
    return result.accuracy, 1.0 - evicted / max(1, prompt), result.flops / len(tasks)


def evicting_config(guidance: str, kv_budget: float | None = None, keep_above: float | None = None,
                    prefill_layer: int | None = None, score: str = "max") -> ReasoningConfig:
    """GSoT with only the prompt's rule on (a budget or a threshold, after prefill or inside
    it), as the kv_budget curve runs it (bench/kv_budget.py `evicting`)."""
    method = "ttm" if prefill_layer is None else PREFILL
    return evicting(ReasoningConfig(max_new_tokens=128, max_batch_size=64, kv_score=score), method, kv_budget, guidance,
                    prefill_layer=prefill_layer, keep_above=keep_above)


def relevance_report(model_name: str = "tiny", n: int = 100, distractors=(0, 10, 20, 40), kv_budgets=(0.25,),
                     seed: int = HELDOUT_SEED, keep_above=(), prefill_layer: int | None = None, score: str = "max",
                     png: Path | None = None, ttm: str | None = None) -> dict:
    model, tokenizer = load_with_tokenizer(model_name, ttm=ttm)
    guidance = model.config.guidance
    report = {"model": str(model_name), "ttm_adapter": ttm, "tasks": n, "seed": seed, "split": "test", "kv_budgets": list(kv_budgets),
              "keep_above": list(keep_above), "prefill_layer": prefill_layer, "kv_score": score,
              "ttm_context": model.config.ttm_context,
              "rows": []}
    rules = [(f"{b}", evicting_config(guidance, kv_budget=b, prefill_layer=prefill_layer, score=score)) for b in kv_budgets]
    rules += [(f"above_{a}", evicting_config(guidance, keep_above=a, prefill_layer=prefill_layer, score=score))
              for a in keep_above]
    for kind in ("arith", "logic"):
        for d in distractors:
            tasks = make_tasks(kind, n, seed, "test", distractors=d)
            row = {"kind": kind, "distractors": d}
            row["cot_off"], _, cot_flops = measure(model, tokenizer, tasks, ReasoningConfig(mode="cot", guidance="off", max_new_tokens=128, max_batch_size=64))
            row[f"cot_{guidance}"], _, _ = measure(model, tokenizer, tasks, ReasoningConfig(mode="cot", guidance=guidance, max_new_tokens=128, max_batch_size=64))
            for label, config in rules:
                row[f"evicted_accuracy_{label}"], row[f"kept_fraction_{label}"], flops = measure(model, tokenizer, tasks, config)
                row[f"flops_ratio_{label}"] = flops / cot_flops
            if d > 0:
                row |= relevance_auroc(model, tokenizer, tasks)
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    most = max(distractors)
    if png is not None and most > 0:  # the heat strip of a logic task and the AUROC bars, at the most distractors
        aurocs = {r["kind"]: r for r in report["rows"] if r["distractors"] == most}
        plot_relevance(model, tokenizer, make_tasks("logic", 1, seed, "test", distractors=most)[0], aurocs, png)
        report["plot"] = str(png)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Temperature AUROC and budgeted eviction on held-out distractor tasks")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--ttm", default=None, help="a TTM adapter folder to attach to --model (quasar train adapter_of)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--distractors", type=int, nargs="+", default=[0, 10, 20, 40])
    parser.add_argument("--kv-budget", type=float, nargs="*", default=[0.25])
    parser.add_argument("--keep-above", type=float, nargs="*", default=[], help="kv_keep_above thresholds (temperatures)")
    parser.add_argument("--prefill-layer", type=int, default=None, help="decide inside prefill after this many layers")
    parser.add_argument("--score", choices=["max", "mean"], default="max", help="temperatures combined over layers (kv_score)")
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED)
    parser.add_argument("--json", default=None)
    parser.add_argument("--png", default=None, help="write the heat strip + AUROC figure here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    report = relevance_report(args.model, args.n, args.distractors, args.kv_budget, args.seed, args.keep_above,
                              args.prefill_layer, args.score, Path(args.png) if args.png else None, ttm=args.ttm)
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
