"""DIR/sweep.md and DIR/plots/ from sweep.parquet: the grid's finished cells as one table (cells
numbered in grid order, as in the plots), the Pareto front of accuracy against FLOPs per task
marked, links to every cell's own report."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .cells import CELLS_DIR, Cell
from .plots import ACCURACY_PLOT, THROUGHPUT_PLOT, accuracy_plot, pareto_front, throughput_plot
from .table import SWEEP_TABLE

SWEEP_MD = "sweep.md"
PLOTS_DIR = "plots"


def _num(value, spec: str = ".3g") -> str:
    return "n/a" if value is None else format(value, spec)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _settings(text: str) -> str:
    settings = json.loads(text)
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "-"


def write_sweep_report(sweep_dir: str | Path, cells: list[Cell], rows: list[dict], axes: str) -> dict:
    """Write sweep.md and plots/*.png for the cells of this grid; returns {cell_id: is_pareto}."""
    folder = Path(sweep_dir)
    by_id = {r["cell_id"]: r for r in rows}
    numbered = [(n, {**by_id[c.cell_id], "model_label": c.model_label, "dataset_label": c.dataset_label})
                for n, c in enumerate(cells, 1) if c.cell_id in by_id]
    judged = [(n, r) for n, r in numbered if r["accuracy"] is not None and r["flops_per_task"] is not None]
    front = pareto_front([(r["flops_per_task"], r["accuracy"]) for _, r in judged])
    on_front = {judged[i][1]["cell_id"] for i in front}
    plots = []
    if numbered:
        (folder / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
        if judged:
            plots.append(accuracy_plot([r for _, r in judged], [n for n, _ in judged], front,
                                       folder / PLOTS_DIR / ACCURACY_PLOT))
        plots.append(throughput_plot([r for _, r in numbered], [n for n, _ in numbered],
                                     folder / PLOTS_DIR / THROUGHPUT_PLOT))
    text = sweep_markdown(numbered, on_front, len(cells), axes, plots)
    temp = folder / f".{SWEEP_MD}.tmp"
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, folder / SWEEP_MD)
    return {r["cell_id"]: r["cell_id"] in on_front for _, r in numbered}


def sweep_markdown(numbered: list[tuple[int, dict]], on_front: set[str], num_cells: int, axes: str,
                   plots: list[str]) -> str:
    lines = [
        "# quasar sweep report", "",
        f"Grid: {axes}. Cells finished: {len(numbered)} of {num_cells}. Data: `{SWEEP_TABLE}` (one row per finished cell).",
        "",
        "| # | cell | model | dataset | mode | settings | tasks | errors | accuracy | tasks/s | gen tok/s "
        "| FLOPs/task | compute reduction vs CoT | Pareto |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, r in numbered:
        link = f"[{r['cell_id']}]({CELLS_DIR}/{r['cell_id']}/report.md)"
        lines.append(
            f"| {n} | {link} | {r['model_label']} | {r['dataset_label']} | {r['mode']} | {_settings(r['settings'])} "
            f"| {r['tasks']} | {r['errors']} | {_pct(r['accuracy'])} | {_num(r['tasks_per_s'])} "
            f"| {_num(r['generated_tokens_per_s'], ',.0f')} | {_num(r['flops_per_task'], '.3e')} "
            f"| {_pct(r['compute_reduction'])} | {'yes' if r['cell_id'] in on_front else ''} |"
        )
    lines += [
        "",
        "- Rates are per cell, over the wall time of the invocations that computed its rows (its own "
        "reading, reasoning and writing; the model load is shared by all cells of a model and not counted).",
        "- Compute reduction = 1 - FLOPs per task / FLOPs per task of the same model and dataset's CoT cell "
        "with the same non-GSoT settings (n/a when that cell has not finished).",
        "- Pareto: no other cell has at most its FLOPs per task and at least its accuracy (one strictly).",
    ]
    if plots:
        lines += [""] + [f"![{p}]({PLOTS_DIR}/{p})" for p in plots]
    return "\n".join(lines) + "\n"
