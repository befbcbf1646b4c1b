"""report.json: the contract keys (design.md) computed from a run folder's results, plus a few
extras (skipped_resumed, runs, stop_reasons, driver_peak_rss_mb...).

Means (steps, tokens, attended KV, FLOPs, latency) are over completed tasks (error rows have no
work to average); accuracy is over every task with a reference (an error counts as wrong).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .throughput import column_sum, last_invocation, run_spans, total_wall_s


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def build_report(results: pa.Table, runs: dict[str, dict], config: dict, model_config=None) -> dict:
    ok = results.filter(pc.is_null(results.column("error")))
    spans = run_spans(results, runs)
    wall_s = total_wall_s(spans)
    hits, misses = column_sum(results, "temperature_cache_hits"), column_sum(results, "temperature_cache_misses")
    latency = _numbers(ok, "latency_s")
    last = last_invocation(runs)
    report = {
        "tasks": results.num_rows,
        "completed": ok.num_rows,
        "errors": results.num_rows - ok.num_rows,
        "wall_s": wall_s,
        "tasks_per_s": _ratio(results.num_rows, wall_s) or 0.0,
        "generated_tokens_per_s": _ratio(column_sum(results, "generated_tokens"), wall_s) or 0.0,
        "prompt_tokens_per_s": _ratio(column_sum(results, "prompt_tokens"), wall_s) or 0.0,
        "accuracy": accuracy(results),
        "mean_steps": _mean(_numbers(ok, "num_steps")),
        "mean_generated_tokens": _mean(_numbers(ok, "generated_tokens")),
        "attended_kv_per_task": _mean(_numbers(ok, "attended_kv")),
        "flops_per_task": flops_per_task(ok, model_config),
        "latency_s": {
            "p50": float(np.percentile(latency, 50)) if len(latency) else None,
            "p95": float(np.percentile(latency, 95)) if len(latency) else None,
        },
        "temperature_cache": {"hits": hits, "misses": misses, "hit_rate": _ratio(hits, hits + misses)},
        "kv_evicted_fraction": _ratio(column_sum(results, "kv_evicted"), column_sum(results, "kv_total")),
        "mode": config.get("mode") or _first(results, "mode"),
        "model": config.get("model") or _first(results, "model"),
        "tp": config.get("tp"),
        "replicas": config.get("replicas"),
        # extras
        "skipped_resumed": last.get("start", {}).get("skipped", 0),
        "computed_last_run": last.get("end", {}).get("computed", 0),
        "runs": len(spans),
        "stop_reasons": stop_reasons(results),
        "accuracy_by_kind": accuracy_by_kind(results),
        "driver_peak_rss_mb": last.get("end", {}).get("driver_peak_rss_mb"),
        "first_result_s": first_result_s(last),
    }
    return report


def first_result_s(invocation: dict) -> float | None:
    """Seconds from the invocation's start to its first committed batch: Ray, the replicas and the
    model starting, plus the first batch itself. On a small input this is most of `wall_s`, so
    the rates above (over the whole wall time) say little about the steady rate there."""
    first, start = invocation.get("end", {}).get("first_result_at"), invocation.get("start", {}).get("at")
    return None if first is None or start is None else max(0.0, float(first) - float(start))


def accuracy(results: pa.Table) -> float | None:
    judged = pc.drop_null(results.column("correct"))
    return _ratio(pc.sum(judged.cast(pa.int64())).as_py() or 0, len(judged))


def accuracy_by_kind(results: pa.Table) -> dict[str, float]:
    judged = results.filter(pc.and_(pc.is_valid(results.column("correct")), pc.is_valid(results.column("kind"))))
    kinds = judged.column("kind").to_pylist()
    correct = judged.column("correct").to_pylist()
    out: dict[str, list[bool]] = {}
    for kind, ok in zip(kinds, correct):
        out.setdefault(kind, []).append(ok)
    return {k: sum(v) / len(v) for k, v in sorted(out.items())}


def stop_reasons(results: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(pc.fill_null(results.column("stop_reason"), "?")).to_pylist()
    return {c["values"]: c["counts"] for c in sorted(counts, key=lambda c: -c["counts"])}


def flops_per_task(ok: pa.Table, model_config) -> float | None:
    """FLOPs from counted tokens and attended KV (engine/flops.py); None without the model's shape."""
    if model_config is None or ok.num_rows == 0:
        return None
    from quasar_dist.engine.flops import flops_for

    tokens = _numbers(ok, "prompt_tokens") + _numbers(ok, "generated_tokens") + _numbers(ok, "probe_tokens")
    attended = _numbers(ok, "attended_kv")
    dropped = _numbers(ok, "dropped_token_layers") if "dropped_token_layers" in ok.column_names else [0] * len(attended)
    return float(np.mean([flops_for(model_config, int(t), int(a), int(d)) for t, a, d in zip(tokens, attended, dropped)]))


def _first(results: pa.Table, name: str):
    return results.column(name)[0].as_py() if results.num_rows else None
