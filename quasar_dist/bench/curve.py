"""Accuracy against compute over a few GSoT threshold settings (and CoT), as a PNG."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from quasar_dist.reasoning.config import ReasoningConfig

from .workload import run_reasoning

SETTINGS = [  # (label, overrides of the default GSoT config: trial probes, convergence test and eviction off)
    ("default", {}),
    ("converge eps=1e-3", {"epsilon": 1e-3}),
    ("probe>=0.99", {"answer_confidence": 0.99}),
    ("probe>=0.9", {"answer_confidence": 0.9}),
    ("evict<0.788", {"evict_below": 0.788}),
    ("evict<0.792", {"evict_below": 0.792}),
    ("evict<0.80", {"evict_below": 0.80}),
    ("probe>=0.99 + evict<0.788", {"answer_confidence": 0.99, "evict_below": 0.788}),
]


def accuracy_compute_curve(model, tokenizer, tasks, base: ReasoningConfig, png: Path) -> list[dict]:
    points = []
    cot = dataclasses.replace(base, mode="cot")
    result = run_reasoning(model, tokenizer, tasks, cot)
    points.append({"label": "CoT", "accuracy": result.accuracy, "flops_per_task": result.flops / len(tasks)})
    for label, overrides in SETTINGS:
        cfg = dataclasses.replace(base, **overrides)
        result = run_reasoning(model, tokenizer, tasks, cfg)
        points.append({"label": f"GSoT {label}", "accuracy": result.accuracy, "flops_per_task": result.flops / len(tasks), "settings": overrides})
    _plot(points, png)
    return points


def _plot(points: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in points:
        marker = "s" if p["label"] == "CoT" else "o"
        ax.scatter(p["flops_per_task"] / 1e6, p["accuracy"], marker=marker)
        ax.annotate(p["label"], (p["flops_per_task"] / 1e6, p["accuracy"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set(xlabel="MFLOPs per task (counted)", ylabel="accuracy", title="accuracy vs compute: GSoT settings and CoT")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
