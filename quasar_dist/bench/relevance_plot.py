"""Temperatures against relevance, to look at rather than read (issue #14 item 5): `quasar bench`'s
`temperature_relevance` section and its figure, also written by `train.relevance_report --png`.

The figure has two panels:
  - a heat strip of one held-out prompt: every layer's temperature of every prompt token under
    the context step 1 sees (bench/relevance.py), with the labelled relevant tokens marked under
    the strip, so flat temperatures, or warm distractors, are seen at once;
  - the AUROC of each layer (and of the layer mean and max) per task kind, against chance (0.5)
    and issue #14's target (0.9).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from quasar_dist.data.tasks import make_tasks

from .relevance import relevance_auroc, step_one_log_tau, token_labels
from .workload import BENCH_SEED, KINDS

DISTRACTORS = 20  # issue #14's range is 20-40; 20 keeps arith inside the shipped model's 256 positions
TARGET_AUROC = 0.9


def relevance_tasks(tasks_per_kind: int, distractors: int = DISTRACTORS, seed: int = BENCH_SEED) -> dict[str, list[dict]]:
    """Held-out distractor tasks (split `test`) of each kind, with their `relevant_spans`."""
    return {kind: make_tasks(kind, tasks_per_kind, seed, "test", distractors=distractors) for kind in KINDS}


def relevance_section(model, tokenizer, tasks_per_kind: int, png: Path | None = None,
                      distractors: int = DISTRACTORS) -> dict:
    """{kind: relevance_auroc(...)} on held-out tasks with `distractors` irrelevant sentences
    (per-task AUROC averaged: per layer, layer mean and max), and with `png` the figure, whose
    strip shows the first logic task."""
    tasks = relevance_tasks(tasks_per_kind, distractors)
    aurocs = {kind: relevance_auroc(model, tokenizer, kind_tasks) for kind, kind_tasks in tasks.items()}
    result: dict = {"distractors": distractors, **aurocs}
    if png is not None:
        plot_relevance(model, tokenizer, tasks[KINDS[-1]][0], aurocs, png)
        result["plot"] = png.name
    return result


def plot_relevance(model, tokenizer, task: dict, aurocs: dict[str, dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ids, labels = token_labels(tokenizer, task["prompt"], task["relevant_spans"])
    tau = step_one_log_tau(model, ids).exp().numpy()  # [L, T]
    words = [_readable(tokenizer.tokenizer.id_to_token(i)) for i in ids]
    fig, (strip, bars) = plt.subplots(2, 1, figsize=(max(8.0, 0.11 * len(ids)), 6.0), dpi=110,
                                      gridspec_kw={"height_ratios": [1.3, 1.0]})
    image = strip.imshow(tau, aspect="auto", cmap="inferno", vmin=0.0, vmax=float(model.config.tau_max))
    relevant = [i for i, label in enumerate(labels) if label == 1]
    strip.scatter(relevant, [tau.shape[0] - 0.3] * len(relevant), marker="^", s=14, color="tab:cyan", clip_on=False)
    strip.set_yticks(range(tau.shape[0]), [f"layer {i}" for i in range(tau.shape[0])], fontsize=7)
    strip.set_xticks(range(len(words)), words, rotation=90, fontsize=5)
    strip.set_title("temperature of each prompt token under step 1's context (one held-out task; "
                    "cyan triangles: the labelled relevant tokens)", fontsize=9)
    fig.colorbar(image, ax=strip, pad=0.01, label="tau")
    _auroc_bars(bars, aurocs)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def _auroc_bars(ax, aurocs: dict[str, dict]) -> None:
    kinds = [k for k, v in aurocs.items() if v.get("tasks")]
    if not kinds:
        ax.text(0.5, 0.5, "no labelled tasks", ha="center", va="center")
        return
    layers = len(aurocs[kinds[0]]["auroc_per_layer"])
    groups = [f"layer {i}" for i in range(layers)] + ["layer mean", "layer max"]
    width = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        row = aurocs[kind]
        values = list(row["auroc_per_layer"]) + [row["auroc_layer_mean"], row["auroc_layer_max"]]
        ax.bar(np.arange(len(groups)) + (j - (len(kinds) - 1) / 2) * width, values, width, label=f"{kind} ({row['tasks']} tasks)")
    ax.axhline(0.5, color="gray", linestyle=":", linewidth=1, label="chance")
    ax.axhline(TARGET_AUROC, color="tab:red", linestyle="--", linewidth=1, label=f"target {TARGET_AUROC}")
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("AUROC, relevant vs distractor")
    ax.legend(fontsize=7, ncol=2, loc="lower right")


def _readable(token: str | None) -> str:
    """Byte-level BPE pieces as text: the space marker dropped, the newline shown."""
    return (token or "?").replace("Ġ", "").replace("Ċ", "\\n")
