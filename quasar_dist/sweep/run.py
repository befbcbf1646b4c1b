"""`quasar sweep CONFIG.yaml [--output DIR]`: an evaluation grid, start to finish.

    load and check the grid: every cell's config, every model, every dataset   -- one-line errors, nothing loaded
    lock DIR; cells whose id is in DIR/sweep.parquet are done and skipped
    per model (in grid order): start its ReplicaPool once
        per cell of that model: run_cell on the pool (a resumable `quasar run` into DIR/cells/<id>/)
                                append the cell's row to DIR/sweep.parquet
        shut the pool down (the next model gets the resources)
    DIR/sweep.md and DIR/plots/ from sweep.parquet
"""
from __future__ import annotations

import itertools
from pathlib import Path

import yaml

from quasar_dist.batch.ray_session import local_num_cpus, ray_session
from quasar_dist.batch.output_lock import output_lock
from quasar_dist.batch.resolve import parallel_config
from quasar_dist.parallel import ReplicaPool
from quasar_dist.util.typed_config import to_dict

from .cell_run import run_cell
from .cells import Cell, expand_cells
from .check import CheckedSweep, check_sweep
from .config import SweepConfig, load_sweep_config
from .report import write_sweep_report
from .table import append_row, cell_row, clean_temp, read_rows

SWEEP_CONFIG_FILE = "sweep.yaml"


def run_sweep_from_cli(config_path: str, output_dir: str | None = None) -> dict:
    """Entry point of `quasar sweep` and jobs/eval_sweep.py."""
    return run_sweep(load_sweep_config(config_path, output_dir), source=str(config_path))


def run_sweep(sweep: SweepConfig, source: str = "sweep config") -> dict:
    """Run every unfinished cell of the grid; returns a summary (cells, computed, skipped, model_loads)."""
    out = Path(sweep.output)
    cells = expand_cells(sweep)
    checked = check_sweep(sweep, cells, out, source)  # before anything is written or started
    with output_lock(out):
        clean_temp(out)
        rows = read_rows(out)
        _write_yaml(out / SWEEP_CONFIG_FILE, to_dict(sweep))
        done = {r["cell_id"] for r in rows}
        todo = [c for c in cells if c.cell_id not in done]
        for n, cell in enumerate(cells, 1):
            if cell.cell_id in done:
                _say(f"cell {n}/{len(cells)} {cell.cell_id}: done earlier, skipped")
        model_loads = run_cells(todo, cells, checked, rows, out) if todo else 0
        on_front = write_sweep_report(out, cells, read_rows(out), grid_axes(sweep, cells))
    _say(f"{len(cells)} cells in {out.resolve()} ({len(todo)} run now, {len(cells) - len(todo)} done earlier), "
         f"{model_loads} model load(s); table {out / 'sweep.md'}")
    return {"cells": len(cells), "computed": len(todo), "skipped": len(cells) - len(todo),
            "model_loads": model_loads, "pareto": sorted(k for k, v in on_front.items() if v)}


def run_cells(todo: list[Cell], cells: list[Cell], checked: CheckedSweep, rows: list[dict], out: Path) -> int:
    """Run `todo` model by model, one ReplicaPool per model; returns how many pools were started."""
    first = checked.configs[todo[0].cell_id]  # session and replica settings are the same for every cell
    parallel = parallel_config(first)
    reserved = parallel.tp * parallel.replicas * parallel.cpus_per_rank  # one model's pool at a time
    number = {c.cell_id: n for n, c in enumerate(cells, 1)}
    model_loads = 0
    with ray_session(first.address, num_cpus=local_num_cpus(first.num_cpus, reserved), show_worker_logs=first.verbose):
        for model, model_cells in itertools.groupby(todo, key=lambda c: c.model):
            model_cells = list(model_cells)
            _say(f"loading {model} ({parallel.replicas} replica(s) x tp {parallel.tp}) for {len(model_cells)} cell(s)")
            with ReplicaPool(model, parallel) as pool:
                model_loads += 1
                for cell in model_cells:
                    _say(f"cell {number[cell.cell_id]}/{len(cells)} {cell.cell_id}: running")
                    report = run_cell(checked.configs[cell.cell_id], pool, checked.datasets[cell.dataset])
                    row = cell_row(cell, report, rows)
                    append_row(out, row)
                    rows.append(row)
    return model_loads


def grid_axes(sweep: SweepConfig, cells: list[Cell]) -> str:
    """The grid in one line, for sweep.md."""
    parts = [f"models ({_unique(c.model_label for c in cells)})", f"datasets ({_unique(c.dataset_label for c in cells)})",
             f"modes ({', '.join(sweep.modes)})"]
    parts += [f"{k} {v}" for k, v in sweep.grid.items()]
    return " x ".join(parts) + f" = {len(cells)} cells"


def _unique(names) -> str:
    return ", ".join(dict.fromkeys(names))  # in order


def _say(text: str) -> None:
    print(f"quasar sweep: {text}", flush=True)


def _write_yaml(path: Path, data: dict) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    temp.replace(path)
