"""DIR/sweep.parquet: one row per finished cell, appended as each cell finishes.

Rows are appended with fastparquet's append mode (a new row group and a new footer). Appending
in place rewrites the footer of the live file, so a kill during the append would leave no footer
and lose every row. The append is therefore made on a copy (the file is one small row per cell),
fsynced and renamed over the original: at any instant sweep.parquet is the old file or the new
one, and a killed sweep loses at most the cell in flight.

A row is the "cell done" mark: a rerun skips the cells whose ids are in the table.
The schema is fixed (the grid point is a JSON string in `settings`), so any grid appends to it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from quasar_dist.util.errors import InputError
from quasar_dist.util.typed_config import ConfigError

from .cells import Cell

SWEEP_TABLE = "sweep.parquet"
TEMP_TABLE = f".{SWEEP_TABLE}.tmp"
STRING_COLUMNS = ("cell_id", "model", "dataset", "mode", "settings", "cot_cell")
INT_COLUMNS = ("tasks", "completed", "errors")
FLOAT_COLUMNS = ("accuracy", "tasks_per_s", "generated_tokens_per_s", "flops_per_task", "mean_generated_tokens",
                 "compute_reduction", "wall_s", "finished_at")
COLUMNS = ["cell_id", "model", "dataset", "mode", "settings", "tasks", "completed", "errors", "accuracy",
           "tasks_per_s", "generated_tokens_per_s", "flops_per_task", "mean_generated_tokens",
           "compute_reduction", "cot_cell", "wall_s", "finished_at"]
REPORT_METRICS = ("tasks", "completed", "errors", "accuracy", "tasks_per_s", "generated_tokens_per_s",
                  "flops_per_task", "mean_generated_tokens", "wall_s")


def settings_json(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def read_rows(sweep_dir: str | Path) -> list[dict]:
    """The table's rows (nulls as None); [] before the first cell finished."""
    path = Path(sweep_dir) / SWEEP_TABLE
    if not path.is_file():
        return []
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: unreadable ({first}); move it away to rerun every cell's report") from None
    if table.column_names != COLUMNS:
        raise ConfigError(f"{path} has other columns than this version writes; use another --output")
    return table.to_pylist()


def cot_reference(cell: Cell, rows: list[dict]) -> dict | None:
    """The finished row of a GSoT cell's CoT baseline (same model, dataset and other settings), if any."""
    return next((r for r in rows if cell.cot_cell is not None and r["cell_id"] == cell.cot_cell), None)


def compute_reduction(flops: float | None, cot_flops: float | None) -> float | None:
    """1 - FLOPs per task / the CoT cell's (bench's gsot_vs_cot definition)."""
    if flops is None or not cot_flops:
        return None
    return 1.0 - flops / cot_flops


def cell_row(cell: Cell, report: dict, rows: list[dict]) -> dict:
    """The table row of a finished cell; `rows`: the rows written before it (for its CoT cell)."""
    cot = cot_reference(cell, rows)
    return {
        "cell_id": cell.cell_id, "model": cell.model, "dataset": cell.dataset, "mode": cell.mode,
        "settings": settings_json(cell.settings),
        **{k: report.get(k) for k in REPORT_METRICS},
        "compute_reduction": compute_reduction(report.get("flops_per_task"), cot and cot["flops_per_task"]),
        "cot_cell": cot and cot["cell_id"],
        "finished_at": time.time(),
    }


def clean_temp(sweep_dir: str | Path) -> None:
    """The copy of a sweep killed mid-append (call it holding the sweep's lock)."""
    (Path(sweep_dir) / TEMP_TABLE).unlink(missing_ok=True)


def append_row(sweep_dir: str | Path, row: dict) -> None:
    import fastparquet
    import pandas as pd

    path = Path(sweep_dir) / SWEEP_TABLE
    frame = pd.DataFrame([row], columns=COLUMNS)
    frame = frame.astype({**{c: object for c in STRING_COLUMNS}, **{c: "int64" for c in INT_COLUMNS},
                          **{c: "float64" for c in FLOAT_COLUMNS}})  # None -> NaN, written as null
    temp = path.with_name(TEMP_TABLE)
    options = dict(object_encoding="utf8", write_index=False)
    if path.is_file():
        shutil.copyfile(path, temp)
        fastparquet.write(str(temp), frame, append=True, **options)
    else:
        fastparquet.write(str(temp), frame, **options)
    with open(temp, "rb") as fh:  # on disk before the name says it is complete
        os.fsync(fh.fileno())
    os.replace(temp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
