"""plots/*.png of a run folder: throughput over time, generated tokens per task, steps per task,
step heat distribution, and (GSoT runs with references and a kind column) accuracy by kind."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .throughput import RunSpan


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def throughput_plot(results: pa.Table, spans: list[RunSpan], path: Path) -> str:
    """Tasks finished per second, in time bins since each invocation started (one line per run)."""
    plt, fig, ax = _figure()
    run_ids = results.column("run_id").to_numpy(zero_copy_only=False)
    finished = results.column("finished_at").to_numpy(zero_copy_only=False).astype(float)
    for span in spans:
        t = finished[run_ids == span.run_id] - span.start
        width = max(span.wall_s / 20, 1e-3)
        edges = np.arange(0, max(t.max(), span.wall_s) + width, width)
        counts, _ = np.histogram(t, bins=edges)
        ax.step(edges[:-1], counts / width, where="post", label=f"run {span.run_id}")
    ax.set(xlabel="seconds since the run started", ylabel="tasks/s", title="Throughput over time")
    if len(spans) > 1:
        ax.legend(fontsize=7)
    return _save(plt, fig, path)


def histogram_plot(values: np.ndarray, path: Path, *, title: str, xlabel: str, integer: bool) -> str:
    plt, fig, ax = _figure()
    if len(values):
        bins = np.arange(values.min(), values.max() + 2) - 0.5 if integer and values.max() - values.min() < 60 else 30
        ax.hist(values, bins=bins)
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    return _save(plt, fig, path)


def accuracy_by_kind_plot(by_kind: dict[str, float], path: Path) -> str:
    plt, fig, ax = _figure()
    ax.bar(list(by_kind), [100 * v for v in by_kind.values()])
    ax.set(ylabel="accuracy (%)", ylim=(0, 100), title="Accuracy by kind")
    return _save(plt, fig, path)


def write_plots(results: pa.Table, spans: list[RunSpan], report: dict, folder: Path) -> list[str]:
    """Write the plots; returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = results.filter(pc.is_null(results.column("error")))
    heats = pc.list_flatten(ok.column("step_temperature")).to_numpy(zero_copy_only=False)
    names = [
        throughput_plot(results, spans, folder / "throughput.png"),
        histogram_plot(ok.column("generated_tokens").to_numpy(zero_copy_only=False), folder / "generated_tokens.png",
                       title="Generated tokens per task", xlabel="generated tokens", integer=True),
        histogram_plot(ok.column("num_steps").to_numpy(zero_copy_only=False), folder / "steps.png",
                       title="Steps per task", xlabel="steps", integer=True),
        histogram_plot(heats.astype(float), folder / "step_heat.png",
                       title="Step heat (mean temperature of a step)", xlabel="heat", integer=False),
    ]
    if report["mode"] == "gsot" and report["accuracy_by_kind"]:
        names.append(accuracy_by_kind_plot(report["accuracy_by_kind"], folder / "accuracy_by_kind.png"))
    return names
