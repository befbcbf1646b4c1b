"""Run every comparison in one process and write the JSON of design.md's contract."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from quasar_dist.batch.model_check import model_gsot
from quasar_dist.model import resolve_model_path
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.solve import engine_slots

from .curve import accuracy_compute_curve
from .engine_vs_hf import compare_engine_hf
from .exit_oracle import exit_oracle
from .gsot_vs_cot import compare_gsot_cot
from .kv_budget import BUDGETS, kv_budget_curve, long_tasks
from .kvpress_external import kvpress_rows
from .overhead import compare_guidance
from .relevance_plot import relevance_section
from .throughput_section import throughput_section
from .workload import load_workload

QUICK = {"tasks_per_kind": 8, "hf_prompts": 16, "batch_sizes": (1, 16), "curve_tasks_per_kind": 6,
         "throughput": {"tiny": 64, "qwen2-40m": 8}, "long_tasks_per_kind": 4, "relevance_tasks_per_kind": 4}
FULL = {"tasks_per_kind": 100, "hf_prompts": 64, "batch_sizes": (1, 8, 32, 64, 256), "curve_tasks_per_kind": 50,
        "throughput": {"tiny": 1024, "qwen2-40m": 256}, "long_tasks_per_kind": 100, "relevance_tasks_per_kind": 100}



def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)"


def shipped_gsot(model_config, batch: int) -> ReasoningConfig:
    """GSoT as `quasar run` runs it: the checkpoint's calibrated gsot_defaults under the run's
    settings (batch/model_check.model_gsot), so gsot_vs_cot compares what a user gets."""
    settings = model_gsot(model_config, "gsot", {"max_new_tokens": 128, "max_batch_size": batch})
    return ReasoningConfig(mode="gsot", **settings)


def run_bench(quick: bool = False, json_path: str | None = None, model_name: str = "tiny") -> dict:
    size = QUICK if quick else FULL
    model, tokenizer, tasks = load_workload(model_name, size["tasks_per_kind"])
    batch = engine_slots(model, ReasoningConfig())  # what `quasar run` uses: the comparisons run at it
    gsot = ReasoningConfig(mode="gsot", max_new_tokens=128, max_batch_size=batch)  # the curves set their own rules
    shipped = shipped_gsot(model.config, batch)
    result = {"gsot_vs_cot": compare_gsot_cot(model, tokenizer, tasks, shipped, batch)}
    prompts = [t["prompt"] for t in tasks][: size["hf_prompts"]]
    result["engine_vs_hf"] = compare_engine_hf(model, tokenizer, resolve_model_path(model_name), prompts, size["batch_sizes"], 128)
    result["guidance_overhead"] = compare_guidance(model, tokenizer, tasks, batch, 128)
    curve_tasks = tasks[: size["curve_tasks_per_kind"]] + tasks[size["tasks_per_kind"] : size["tasks_per_kind"] + size["curve_tasks_per_kind"]]
    png = Path(json_path).with_suffix(".png") if json_path else Path("bench_curve.png")
    result["accuracy_vs_compute"] = accuracy_compute_curve(model, tokenizer, curve_tasks, gsot, png)
    result["exit_oracle"] = {kind: exit_oracle(model, tokenizer, [t for t in tasks if t["kind"] == kind],
                                               max_new_tokens=128, num_slots=batch) for kind in ("arith", "logic")}
    long = long_tasks(size["long_tasks_per_kind"])
    result["temperature_relevance"] = relevance_section(model, tokenizer, size["relevance_tasks_per_kind"],
                                                        png.with_name(png.stem + "_relevance.png"))
    result["gsot_vs_cot_long"] = compare_gsot_cot(model, tokenizer, long, shipped, batch)
    result["kv_budget_curve"] = kv_budget_curve(model, tokenizer, long, gsot, png.with_name(png.stem + "_kv_budget.png"))
    external, result["kvpress"] = kvpress_rows(resolve_model_path(model_name), size["long_tasks_per_kind"], BUDGETS)
    result["kv_budget_curve"] += external
    result["throughput"] = throughput_section(model, resolve_model_path(model_name), size["throughput"])
    result["device"] = device_name()
    result["quick"] = quick
    text = json.dumps(result, indent=2, default=float)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n")
    print(text)
    return result
