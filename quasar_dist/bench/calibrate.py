"""GSoT defaults from measurement (issue #15, item 5): run candidate settings on the *validation*
split (never test), short tasks and long distractor tasks, against CoT with the full cache;
keep the candidates within `max_loss` accuracy of CoT on both sets and not costlier than CoT on
the short set; pick the one with the fewest counted FLOPs on the long set. Then, separately, the
pick and CoT run on held-out test tasks (`--test`), which is the number to report.

    python -m quasar_dist.bench.calibrate --model runs/tiny_guided/model --n 40 --json docs/calibration.json

With `--write-defaults` the pick becomes the checkpoint's `quasar.gsot_defaults` (config.json),
which `quasar run`, sweeps and processors in GSoT mode start from (batch/model_check.py).
"""
from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import torch

from quasar_dist.data.tasks import make_tasks
from quasar_dist.model import load_with_tokenizer
from quasar_dist.reasoning.config import ReasoningConfig

from .workload import KINDS, accuracy_by_kind, run_reasoning

VAL_SEED, TEST_SEED = 11, 777
LONG = (20, 40)


def task_sets(n: int, split: str, seed: int) -> dict[str, list[dict]]:
    """`short`: today's tasks; `long`: half at 20, half at 40 distractors; n per kind each."""
    short = [t for kind in KINDS for t in make_tasks(kind, n, seed, split)]
    per = max(1, n // len(LONG))
    long = [t for kind in KINDS for d in LONG for t in make_tasks(kind, per, seed + d, split, distractors=d)]
    return {"short": short, "long": long}


def candidates(num_layers: int, context: str) -> list[tuple[str, dict]]:
    """Settings tried on top of the ReasoningConfig defaults: the defaults themselves and without
    the heat-driven backtracking, a DEER-style exit (a trial answer at every boundary, stop when
    its probability reaches the threshold), then (without backtracking) a temperature threshold
    on the prompt, after prefill or inside it after 1..2 layers, ranked by the max or the mean
    over layers, and a fixed share of the prompt (kv_budget), after prefill or after layer 1."""
    out = [("defaults", {}), ("no backtrack", {"backtrack_below": 0.0})]
    out += [(f"trial answers {c} (DEER-style exit)", {"answer_confidence": c, "backtrack_below": 0.0}) for c in (0.99, 0.999)]
    layers = [None] + (list(range(1, min(3, num_layers))) if context == "last" else [])
    for above, layer, score in itertools.product((0.3, 0.6, 1.0, 1.3, 1.6), layers, ("max", "mean")):
        name = f"keep_above {above} ({score})" + (f", layer {layer}" if layer else "")
        out.append((name, {"kv_keep_above": above, "kv_budget_layer": layer, "kv_score": score, "backtrack_below": 0.0}))
    for budget, layer in itertools.product((0.1, 0.15, 0.25, 0.35), layers[:2]):
        name = f"kv_budget {budget}" + (f", layer {layer}" if layer else "")
        out.append((name, {"kv_budget": budget, "kv_budget_layer": layer, "backtrack_below": 0.0}))
    return out


def measure(model, tokenizer, sets: dict, config: ReasoningConfig) -> dict:
    row = {}
    for name, tasks in sets.items():
        result = run_reasoning(model, tokenizer, tasks, config)
        row[name] = {"accuracy": result.accuracy, "flops_per_task": result.flops / len(tasks), "wall_s": result.wall_s,
                     "accuracy_by_kind": accuracy_by_kind(tasks, result.rows)}
    return row


def admissible(row: dict, cot: dict, max_loss: float) -> bool:
    return (all(row[s]["accuracy"] >= cot[s]["accuracy"] - max_loss for s in cot)
            and row["short"]["flops_per_task"] <= cot["short"]["flops_per_task"])


def calibrate(model, tokenizer, n: int, base: ReasoningConfig, max_loss: float = 0.01,
              grid: list[tuple[str, dict]] | None = None) -> dict:
    """grid: the (name, overrides) candidates; None = `candidates` for this model."""
    sets = task_sets(n, "val", VAL_SEED)
    cot = measure(model, tokenizer, sets, replace(base, mode="cot", guidance="off"))
    rows = []
    for name, overrides in grid or candidates(model.config.num_layers, model.config.ttm_context):
        row = {"name": name, "overrides": overrides, **measure(model, tokenizer, sets, replace(base, **overrides))}
        row["admissible"] = admissible(row, cot, max_loss)
        row["long_flops_ratio"] = row["long"]["flops_per_task"] / cot["long"]["flops_per_task"]
        rows.append(row)
        print(f"{name:>40}: short {row['short']['accuracy']:.3f} long {row['long']['accuracy']:.3f} "
              f"long FLOPs x{row['long_flops_ratio']:.3f} {'ok' if row['admissible'] else '-'}", flush=True)
    ok = [r for r in rows if r["admissible"]]
    pick = min(ok, key=lambda r: r["long"]["flops_per_task"]) if ok else None
    return {"split": "val", "seed": VAL_SEED, "tasks_per_kind": n, "max_loss": max_loss, "cot": cot, "rows": rows,
            "pick": pick["name"] if pick else None, "pick_overrides": pick["overrides"] if pick else None}


def held_out(model, tokenizer, n: int, base: ReasoningConfig, overrides: dict) -> dict:
    """The pick against CoT on test tasks (a fresh seed): accuracy, FLOPs and wall time."""
    sets = task_sets(n, "test", TEST_SEED)
    cot = measure(model, tokenizer, sets, replace(base, mode="cot", guidance="off"))
    gsot = measure(model, tokenizer, sets, replace(base, **overrides))
    summary = {s: {"accuracy_cot": cot[s]["accuracy"], "accuracy_gsot": gsot[s]["accuracy"],
                   "compute_reduction": 1.0 - gsot[s]["flops_per_task"] / cot[s]["flops_per_task"],
                   "speedup": cot[s]["wall_s"] / gsot[s]["wall_s"]} for s in sets}
    return {"split": "test", "seed": TEST_SEED, "tasks_per_kind": n, "overrides": overrides, "cot": cot, "gsot": gsot,
            "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--n", type=int, default=40, help="tasks per kind and set")
    parser.add_argument("--max-loss", type=float, default=0.01)
    parser.add_argument("--test", action="store_true", help="also run the pick on held-out test tasks")
    parser.add_argument("--json", default=None)
    parser.add_argument("--write-defaults", action="store_true",
                        help="store the pick in the model folder's config.json (quasar.gsot_defaults)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, tokenizer = load_with_tokenizer(args.model)
    base = ReasoningConfig(max_new_tokens=128, max_batch_size=64)
    report = {"model": args.model, "calibration": calibrate(model, tokenizer, args.n, base, args.max_loss)}
    overrides = report["calibration"]["pick_overrides"]
    if args.test and overrides is not None:
        report["test"] = held_out(model, tokenizer, args.n, base, overrides)
        print(json.dumps(report["test"]["summary"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.write_defaults and overrides is not None:
        write_gsot_defaults(args.model, overrides)


def write_gsot_defaults(model: str, overrides: dict) -> None:
    """The calibrated pick as the folder's `quasar.gsot_defaults` (checked as ReasoningConfig fields)."""
    from quasar_dist.model.folder import resolve_model_path
    from quasar_dist.util.typed_config import from_dict

    from_dict(ReasoningConfig, dict(overrides), source="calibration pick")
    path = Path(resolve_model_path(model)) / "config.json"
    data = json.loads(path.read_text())
    data.setdefault("quasar", {})["gsot_defaults"] = dict(overrides)
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
