"""DIR/plots/*.png of a sweep: accuracy against FLOPs per task with the Pareto front marked, and
throughput (tasks/s, generated tokens/s) per cell. Points and bars carry the cell's number in
sweep.md's table."""
from __future__ import annotations

from pathlib import Path

ACCURACY_PLOT = "accuracy_vs_flops.png"
THROUGHPUT_PLOT = "throughput.png"
MARKERS = {"gsot": "o", "cot": "s"}
LOG_SCALE_SPAN = 10.0  # a FLOPs axis spanning more than this factor is drawn in log scale


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (flops, accuracy) points no other point beats: at most the FLOPs and at
    least the accuracy, one of them strictly. In order of FLOPs."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    for i in order:
        if not front or points[i][1] > points[front[-1]][1] or points[i] == points[front[-1]]:  # ties: both
            front.append(i)
    return front


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(1, 1, figsize=(width, height), dpi=100)


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def accuracy_plot(rows: list[dict], numbers: list[int], front: list[int], path: Path) -> str:
    """`rows`: cells with accuracy and FLOPs; `front`: indices into rows."""
    plt, fig, ax = _figure(6.4, 4.2)
    models = sorted({r["model_label"] for r in rows})
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for mode, marker in MARKERS.items():
        for model in models:
            mine = [i for i, r in enumerate(rows) if r["mode"] == mode and r["model_label"] == model]
            if mine:
                ax.scatter([rows[i]["flops_per_task"] for i in mine], [100 * rows[i]["accuracy"] for i in mine],
                           marker=marker, s=70 if mode == "cot" else 30, edgecolors=colors[model],
                           facecolors="none" if mode == "cot" else colors[model],  # hollow: a GSoT cell on the same spot shows
                           label=f"{model} {mode}", zorder=3)
    at: dict[tuple[float, float], list[str]] = {}  # cells on the same spot share one label
    for i, r in enumerate(rows):
        at.setdefault((r["flops_per_task"], 100 * r["accuracy"]), []).append(f"#{numbers[i]}")
    for point, names in at.items():
        ax.annotate(",".join(names), point, textcoords="offset points", xytext=(4, 4), fontsize=7)
    if front:
        xs = [rows[i]["flops_per_task"] for i in front]
        ys = [100 * rows[i]["accuracy"] for i in front]
        ax.step(xs, ys, where="post", color="k", lw=1, ls="--", label="Pareto front", zorder=2)
        ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="k", zorder=4)
    ax.set(xlabel="FLOPs per task", ylabel="accuracy (%)", title="Accuracy against compute per cell", ylim=(-3, 103))
    flops = [r["flops_per_task"] for r in rows]
    if min(flops) > 0 and max(flops) / min(flops) > LOG_SCALE_SPAN:
        ax.set_xscale("log")
    else:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def throughput_plot(rows: list[dict], numbers: list[int], path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 1.2 + 0.35 * len(rows)), dpi=100, sharey=True)
    names = [f"#{n} {r['model_label']} {r['mode']}" for n, r in zip(numbers, rows)]
    at = list(range(len(rows)))
    colors = [f"C{0 if r['mode'] == 'gsot' else 1}" for r in rows]
    left.barh(at, [r["tasks_per_s"] or 0.0 for r in rows], color=colors)
    right.barh(at, [r["generated_tokens_per_s"] or 0.0 for r in rows], color=colors)
    left.set(yticks=at, yticklabels=names, xlabel="tasks/s", title="Throughput per cell")
    right.set(xlabel="generated tokens/s")
    left.invert_yaxis()
    return _save(plt, fig, path)
