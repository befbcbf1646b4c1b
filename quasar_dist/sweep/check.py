"""Everything a sweep can check before Ray starts or a model loads, as one-line errors:
every cell's run config (ConfigError), every model's config.json and tokenizer (ModelLoadError),
every dataset's Parquet footers and id column (InputError). A grid that fails here has written
nothing and loaded nothing.

The datasets' plans (files, columns, id hashes after `limit`) are kept: each dataset is scanned
once per sweep, not once per cell.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from quasar_dist.batch.config import RunConfig
from quasar_dist.batch.inputs import InputSpec, inspect_inputs
from quasar_dist.batch.model_check import check_model, model_gsot
from quasar_dist.batch.resolve import check_output_outside_input, parallel_config, reasoning_config
from quasar_dist.batch.task_plan import scan_task_ids
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.util.typed_config import from_dict

from .cells import Cell, cell_run_config, grid_points
from .config import SweepConfig


@dataclass(frozen=True, slots=True)
class DatasetScan:
    spec: InputSpec
    task_ids: np.ndarray
    """Hashes of the ids in scope (after `limit`), as batch/task_plan.py scan_task_ids returns them."""


@dataclass(frozen=True, slots=True)
class CheckedSweep:
    configs: dict[str, RunConfig]
    """cell id -> the cell's RunConfig."""
    datasets: dict[str, DatasetScan]
    """dataset (as the sweep names it) -> its scan."""


def check_sweep(sweep: SweepConfig, cells: list[Cell], sweep_dir: str | Path, source: str) -> CheckedSweep:
    for point in grid_points(sweep.grid):  # the grid's own values first, named as the grid names them
        from_dict(ReasoningConfig, point, source=source, prefix="grid.")
    tp = cell_run_config(sweep, cells[0], sweep_dir, source).tp
    model_configs = {model: check_model(model, tp) for model in sweep.models}
    configs = {}
    for cell in cells:
        cfg = cell_run_config(sweep, cell, sweep_dir, source)
        cfg = replace(cfg, gsot=model_gsot(model_configs[cell.model], cell.mode, cfg.gsot))  # the checkpoint's defaults
        reasoning_config(cfg, source)
        parallel_config(cfg, source)
        check_output_outside_input(cfg)
        configs[cell.cell_id] = cfg
    datasets = {}
    for cell in cells:
        if cell.dataset not in datasets:
            cfg = configs[cell.cell_id]
            spec = inspect_inputs(cfg.input, prompt_col=cfg.prompt_col, id_col=cfg.id_col,
                                  answer_col=cfg.answer_col, kind_col=cfg.kind_col)
            datasets[cell.dataset] = DatasetScan(spec, scan_task_ids(spec, cfg.limit))
    return CheckedSweep(configs, datasets)
