"""KV budget curve (issue #15): every eviction method at the same budgets, in the same engine, on
long distractor tasks. One row per (method, budget): accuracy, FLOPs per task (counted: the
prompt's prefill, then decoding over the kept entries), wall time, and the share of prompt
entries kept. `ttm` decodes with the model's guidance; the baselines decode the plain model
(guidance off), the way those methods are used. Also the Pareto plot (accuracy vs FLOPs and vs
wall time, one line per method)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from quasar_dist.data.tasks import make_tasks
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.evictors import EVICTORS

from .workload import BENCH_SEED, KINDS, accuracy_by_kind, run_reasoning

BUDGETS = (0.1, 0.25, 0.5)


def long_tasks(tasks_per_kind: int, distractors=(20, 40), seed: int = BENCH_SEED) -> list[dict]:
    """Held-out distractor tasks: `tasks_per_kind` per kind, split evenly over the counts."""
    per = max(1, tasks_per_kind // len(distractors))
    return [t for kind in KINDS for d in distractors for t in make_tasks(kind, per, seed + d, "test", distractors=d)]


PREFILL = "ttm_prefill"  # ttm, decided inside prefill after PREFILL_LAYER layers (Algorithm 1)
PREFILL_LAYER = 1
METHODS = (*EVICTORS, PREFILL)


def evicting(base: ReasoningConfig, method: str, budget: float | None, model_guidance: str,
             prefill_layer: int = PREFILL_LAYER, keep_above: float | None = None) -> ReasoningConfig:
    """Greedy decoding with only the prompt budget on (no backtracking, no probes); every method
    keeps the first token and the last 8 (what training protects) and fills the rest of the
    budget by its own ranking (`ttm` alone may take a temperature threshold `keep_above`
    instead of a budget). `ttm_prefill` is `ttm` decided inside prefill, so that the layers
    after `prefill_layer` never compute the dropped tokens."""
    ttm = method in ("ttm", PREFILL)
    return replace(base, mode="gsot", kv_budget=budget, kv_keep_above=keep_above, kv_evictor="ttm" if ttm else method,
                   backtrack_below=0.0, answer_confidence=1.0, epsilon=0.0, evict_below=0.0,
                   guidance=model_guidance if ttm else "off", sink_tokens=1, recent_tokens=8,
                   kv_budget_layer=prefill_layer if method == PREFILL else None)


def kv_budget_curve(model, tokenizer, tasks: list[dict], base: ReasoningConfig, png: Path | None = None,
                    budgets=BUDGETS, methods=None, prefill_layer: int = PREFILL_LAYER) -> list[dict]:
    """methods: every baseline, and ttm_prefill where the model allows it (ttm_context last)."""
    if methods is None:
        methods = METHODS if model.config.ttm_context == "last" else EVICTORS
    rows = []
    full = run_reasoning(model, tokenizer, tasks, replace(base, mode="cot", guidance="off"))
    rows.append(_row("full", 1.0, full, tasks))
    for method in methods:
        for budget in budgets:
            result = run_reasoning(model, tokenizer, tasks, evicting(base, method, budget, model.config.guidance, prefill_layer))
            rows.append(_row(method, budget, result, tasks))
    if png is not None:
        plot_pareto(rows, png)
    return rows


def _row(method: str, budget: float, result, tasks) -> dict:
    prompt = sum(r["prompt_tokens"] for r in result.rows)
    evicted = sum(r["kv_evicted"] for r in result.rows)
    return {"method": method, "budget": budget, "accuracy": result.accuracy, "flops_per_task": result.flops / len(tasks),
            "wall_s": result.wall_s, "kv_kept_fraction": 1.0 - evicted / max(1, prompt),
            "accuracy_by_kind": accuracy_by_kind(tasks, result.rows)}


def plot_pareto(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "full"]
    full = next((r for r in rows if r["method"] == "full"), None)
    for ax, key, label in ((axes[0], "flops_per_task", "MFLOPs per task (counted)"), (axes[1], "wall_s", "wall time (s)")):
        scale = 1e6 if key == "flops_per_task" else 1.0
        for method in methods:
            pts = sorted((r[key] / scale, r["accuracy"]) for r in rows if r["method"] == method)
            ax.plot(*zip(*pts), marker="o", label=method)
        if full is not None:
            ax.scatter([full[key] / scale], [full["accuracy"]], marker="*", s=120, color="black", label="full cache (CoT)")
        ax.set(xlabel=label, ylabel="accuracy", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set_title("accuracy vs compute, budgets " + ", ".join(str(b) for b in sorted({r["budget"] for r in rows if r["method"] != "full"})))
    axes[1].set_title("accuracy vs wall time")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
