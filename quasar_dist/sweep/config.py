"""The sweep's config: one typed dataclass, filled from YAML (configs/sweeps/*.yaml).

A sweep is a grid: models x datasets x modes x GSoT settings. What every cell shares (limit,
batch size, replicas, base reasoning settings...) is a RunConfig mapping under `run:`, so a cell
is exactly a `quasar run` with its model, dataset, mode and grid point filled in.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.util.typed_config import check_relative_path, from_dict, load_yaml_dict

DEFAULT_OUTPUT = "outputs/sweep"
SHIPPED_DATASET = "sample"  # the name of quasar_dist/assets/sample_tasks.parquet in `datasets`
# RunConfig fields each cell sets itself: they are the grid's axes or the sweep's own folder.
CELL_OWNED = ("model", "mode", "input", "output", "resume")
REASONING_FIELDS = tuple(f.name for f in fields(ReasoningConfig) if f.name != "mode")


@dataclass(kw_only=True, slots=True)
class SweepConfig:
    models: list[str] = field(default_factory=list)
    """Models to evaluate: "tiny" (shipped) or local model folders. Each is loaded once for the whole sweep."""
    datasets: list[str] = field(default_factory=lambda: [SHIPPED_DATASET])
    """Task sets: "sample" (the shipped 64 tasks), or a Parquet file, folder or glob, as `quasar run --input`."""
    modes: list[Literal["gsot", "cot"]] = field(default_factory=lambda: ["gsot", "cot"])
    """Reasoning modes; a CoT cell ignores the GSoT-only settings of the grid (one CoT cell per distinct rest)."""
    grid: dict[str, Any] = field(default_factory=dict)
    """GSoT settings axes: ReasoningConfig field -> list of values (thresholds, limits). Cells take every combination."""
    run: dict[str, Any] = field(default_factory=dict)
    """RunConfig fields every cell shares (limit, batch_size, tp, replicas, gsot, parallel, columns...), not model/mode/input/output/resume."""
    output: str = DEFAULT_OUTPUT
    """Sweep folder: cells/<cell-id>/ (one `quasar run` folder each), sweep.parquet, sweep.md, plots/. Re-running on it resumes."""

    def __post_init__(self) -> None:
        for name in ("models", "datasets", "modes"):
            _non_empty_unique(name, getattr(self, name))
        for key, values in self.grid.items():
            if key == "mode":
                raise ValueError("grid.mode: list modes under 'modes', not in the grid")
            if key not in REASONING_FIELDS:
                raise ValueError(f"unknown grid key 'grid.{key}' (allowed: ReasoningConfig fields: {', '.join(REASONING_FIELDS)})")
            if not isinstance(values, list):
                raise ValueError(f"grid.{key} must be a list of values, got {values!r}")
            _non_empty_unique(f"grid.{key}", values)
        owned = sorted(set(self.run) & set(CELL_OWNED))
        if owned:
            raise ValueError(f"run.{owned[0]} is set by each cell (use models / datasets / modes / the sweep's output)")
        base_gsot = self.run.get("gsot") or {}
        if isinstance(base_gsot, dict):
            both = sorted(set(base_gsot) & set(self.grid))
            if both:
                raise ValueError(f"grid.{both[0]} is also set in run.gsot; set it in one place")
        if not self.output:
            raise ValueError("output must not be empty")


def _non_empty_unique(name: str, values: list) -> None:
    if not values:
        raise ValueError(f"{name} is empty: a sweep axis needs at least one value")
    seen = []
    for v in values:
        if v in seen:
            raise ValueError(f"{name} lists {v!r} twice")
        seen.append(v)


def load_sweep_config(config_path: str, output: str | None = None) -> SweepConfig:
    """The YAML filled into SweepConfig; `output` (the --output flag) overrides the YAML's."""
    data = load_yaml_dict(config_path)
    if isinstance(data.get("output"), str):
        check_relative_path(data["output"], str(config_path), "output")  # as run configs: no '..'
    if output is not None:
        data["output"] = output
    return from_dict(SweepConfig, data, source=str(config_path))
