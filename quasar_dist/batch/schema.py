"""The output Parquet schema (design.md "Output Parquet") and the rows that fill it.

Contract columns first, in the contract's order; then the extras the report needs (kind, probe
tokens, temperature-cache and eviction counters) and the job's own bookkeeping (run_id,
finished_at). `step_temperature` is list<float> in Arrow's naming, i.e. float32.
"""
from __future__ import annotations

import pyarrow as pa

from quasar_dist.data.answers import answers_match

CONTRACT_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("prompt", pa.string()),
    pa.field("reference", pa.string()),
    pa.field("answer", pa.string()),
    pa.field("correct", pa.bool_()),
    pa.field("steps", pa.list_(pa.string())),
    pa.field("num_steps", pa.int64()),
    pa.field("prompt_tokens", pa.int64()),
    pa.field("generated_tokens", pa.int64()),
    pa.field("attended_kv", pa.int64()),
    pa.field("step_temperature", pa.list_(pa.float32())),
    pa.field("stop_reason", pa.string()),
    pa.field("latency_s", pa.float64()),
    pa.field("error", pa.string()),
    pa.field("mode", pa.string()),
    pa.field("model", pa.string()),
]
EXTRA_FIELDS = [
    pa.field("kind", pa.string()),
    pa.field("probe_tokens", pa.int64()),
    pa.field("temperature_cache_hits", pa.int64()),
    pa.field("temperature_cache_misses", pa.int64()),
    pa.field("kv_evicted", pa.int64()),
    pa.field("kv_total", pa.int64()),
    pa.field("dropped_token_layers", pa.int64()),  # prompt (token, layer) pairs prefill dropping skipped
    pa.field("run_id", pa.string()),  # which invocation computed the row (resume bookkeeping)
    pa.field("finished_at", pa.float64()),  # unix time its batch finished (throughput over time)
]
OUTPUT_SCHEMA = pa.schema(CONTRACT_FIELDS + EXTRA_FIELDS)
STOP_REASONS = ("answer", "converged", "max_steps", "max_tokens", "error")

# engine row field -> value when the engine did not report it
ENGINE_DEFAULTS = {
    "answer": None, "steps": [], "num_steps": 0, "prompt_tokens": 0, "generated_tokens": 0,
    "attended_kv": 0, "step_temperature": [], "stop_reason": "error", "latency_s": 0.0, "error": None,
    "probe_tokens": 0, "temperature_cache_hits": 0, "temperature_cache_misses": 0, "kv_evicted": 0, "kv_total": 0,
    "dropped_token_layers": 0,
}


def error_row(cause: str) -> dict:
    """The engine-row fields of a task that was not run (bad prompt, failed replica)."""
    return {**ENGINE_DEFAULTS, "error": cause, "stop_reason": "error"}


def output_row(task: dict, engine_row: dict, *, mode: str, model: str, run_id: str, finished_at: float) -> dict:
    """One output row from the task's input fields (id, prompt, reference, kind) and its engine row."""
    row = {**ENGINE_DEFAULTS, **{k: v for k, v in engine_row.items() if k in ENGINE_DEFAULTS}}
    if row["error"] is not None:
        row["stop_reason"] = "error"
    reference = task.get("reference")
    return {
        **row,
        "id": task["id"],
        "prompt": task["prompt"],
        "reference": reference,
        "kind": task.get("kind"),
        "correct": None if reference is None else answers_match(row["answer"], reference),
        "mode": mode,
        "model": model,
        "run_id": run_id,
        "finished_at": finished_at,
    }


def output_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
