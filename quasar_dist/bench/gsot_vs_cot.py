"""GSoT against CoT on the same model, tasks and batch size: accuracy, compute, tokens, time."""
from __future__ import annotations

from quasar_dist.reasoning.config import ReasoningConfig

from .workload import accuracy_by_kind, fastest_interleaved


def compare_gsot_cot(model, tokenizer, tasks, gsot: ReasoningConfig, batch_size: int) -> dict:
    cot_cfg = ReasoningConfig(mode="cot", max_new_tokens=gsot.max_new_tokens, max_steps=gsot.max_steps, max_batch_size=batch_size)
    runs = fastest_interleaved(model, tokenizer, tasks, {"cot": cot_cfg, "gsot": gsot})
    cot, guided = runs["cot"], runs["gsot"]
    stops = {}
    for row in guided.rows:
        stops[row["stop_reason"]] = stops.get(row["stop_reason"], 0) + 1
    return {
        "accuracy_cot": cot.accuracy,
        "accuracy_gsot": guided.accuracy,
        "compute_reduction": 1.0 - guided.flops / cot.flops,
        "generated_token_reduction": 1.0 - guided.generated_tokens / cot.generated_tokens,
        "speedup": cot.wall_s / guided.wall_s,
        "kv_kept_fraction": 1.0 - sum(r["kv_evicted"] for r in guided.rows) / max(1, sum(r["kv_total"] for r in guided.rows)),
        "details": {
            "tasks": len(tasks),
            "accuracy_by_kind_cot": accuracy_by_kind(tasks, cot.rows),
            "accuracy_by_kind_gsot": accuracy_by_kind(tasks, guided.rows),
            "flops_per_task_cot": cot.flops / len(tasks),
            "flops_per_task_gsot": guided.flops / len(tasks),
            "generated_tokens_cot": cot.generated_tokens,
            "generated_tokens_gsot": guided.generated_tokens,
            "probe_tokens_gsot": guided.probe_tokens,
            "wall_s_cot": cot.wall_s,
            "wall_s_gsot": guided.wall_s,
            "gsot_stop_reasons": stops,
            "kv_evicted_fraction_gsot": sum(r["kv_evicted"] for r in guided.rows) / max(1, sum(r["kv_total"] for r in guided.rows)),
        },
    }
