"""The grid's cells: which runs a sweep makes, their ids, and each one's RunConfig.

Order: by model (so one model's cells run back to back on its replicas), then dataset, then the
CoT cells before the GSoT cells, so a GSoT cell's compute reduction against its CoT cell is known
when its row is written.

A cell id is a readable slug plus the first 8 hex digits of a hash of what defines the
experiment (model, dataset, mode, reasoning settings, limit): the same settings give the same
id in every run of the sweep, and any change gives a new folder.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from quasar_dist.batch.config import RunConfig
from quasar_dist.util.typed_config import from_dict

from .config import SHIPPED_DATASET, SweepConfig

# ReasoningConfig fields only the GSoT loop reads (reasoning/gsot.py: backtracking, eviction,
# the answer probe, convergence). A CoT cell drops them: the CoT baseline would give the same
# rows for every value, so the grid has one CoT cell per distinct value of the other settings.
GSOT_ONLY = frozenset({
    "backtrack_below", "max_retries", "retry_temperature", "evict_below", "sink_tokens",
    "recent_tokens", "answer_confidence", "probe_tokens", "epsilon",
})
CELLS_DIR = "cells"
MAX_SLUG = 80
HASH_CHARS = 8
MODE_ORDER = {"cot": 0, "gsot": 1}


@dataclass(frozen=True, slots=True)
class Cell:
    cell_id: str
    model: str
    """As the sweep names it: "tiny" or a model folder."""
    dataset: str
    """As the sweep names it: "sample" or a Parquet file, folder or glob."""
    mode: str
    settings: dict
    """The grid point (without GSoT-only keys for a CoT cell): what tells this cell from its neighbours."""
    gsot: dict
    """The cell's reasoning settings: run.gsot with the grid point on top (GSoT-only keys dropped for CoT)."""
    cot_cell: str | None
    """A GSoT cell's CoT baseline: the id of the CoT cell with the same model, dataset and other settings."""

    @property
    def model_label(self) -> str:
        return label(self.model)

    @property
    def dataset_label(self) -> str:
        return label(self.dataset)


def label(name: str) -> str:
    """A short readable name: a shipped name as is, else the file or folder name without .parquet."""
    stem = Path(name.rstrip("/")).name or name
    return _slug(stem.removesuffix(".parquet")) or "x"


def for_mode(mode: str, settings: dict) -> dict:
    return {k: v for k, v in settings.items() if mode == "gsot" or k not in GSOT_ONLY}


def grid_points(grid: dict) -> list[dict]:
    """Every combination of the grid's axes, in the YAML's order; [{}] for an empty grid."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def expand_cells(sweep: SweepConfig) -> list[Cell]:
    base = dict(sweep.run.get("gsot") or {})
    limit = sweep.run.get("limit")
    cells: list[Cell] = []
    for model, dataset in itertools.product(sweep.models, sweep.datasets):
        for mode in sorted(sweep.modes, key=MODE_ORDER.__getitem__):
            seen: list[dict] = []
            for point in grid_points(sweep.grid):
                settings = for_mode(mode, point)
                if settings in seen:  # a CoT cell that only GSoT-only settings would tell apart
                    continue
                seen.append(settings)
                ids = {m: cell_id(model, dataset, m, for_mode(m, point), for_mode(m, {**base, **point}), limit)
                       for m in ("gsot", "cot")}
                cells.append(Cell(cell_id=ids[mode], model=model, dataset=dataset, mode=mode, settings=settings,
                                  gsot=for_mode(mode, {**base, **point}),
                                  cot_cell=ids["cot"] if mode == "gsot" else None))
    return cells


def cell_id(model: str, dataset: str, mode: str, settings: dict, gsot: dict, limit: int | None) -> str:
    """Slug of the names and the grid point, then a hash of all that defines the experiment."""
    identity = {"model": model, "dataset": dataset, "mode": mode, "gsot": gsot, "limit": limit}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    parts = [label(model), label(dataset), mode] + [f"{k}={_slug(str(v))}" for k, v in settings.items()]
    return f"{'-'.join(parts)[:MAX_SLUG]}-{digest[:HASH_CHARS]}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_.-")


def cell_output(sweep_dir: str | Path, cell: Cell) -> Path:
    return Path(sweep_dir) / CELLS_DIR / cell.cell_id


def cell_run_config(sweep: SweepConfig, cell: Cell, sweep_dir: str | Path, source: str) -> RunConfig:
    """The cell as a `quasar run` config: its folder is an ordinary run folder (resumable with
    `quasar run --config <cell>/config.yaml` too)."""
    data = {
        **sweep.run,
        "model": cell.model,
        "mode": cell.mode,
        "input": None if cell.dataset == SHIPPED_DATASET else cell.dataset,
        "output": str(cell_output(sweep_dir, cell)),
        "resume": True,
        "gsot": dict(cell.gsot),
    }
    return from_dict(RunConfig, data, source=source, prefix="run.")
