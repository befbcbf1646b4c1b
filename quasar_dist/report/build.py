"""`quasar report DIR` (and the end of every `quasar run`): report.json, report.md and plots/
rebuilt from the folder's results, config.yaml and runs.jsonl alone."""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from .markdown import report_markdown
from .plots import write_plots
from .results_table import read_results
from .run_log import read_runs
from .summary import build_report
from .throughput import run_spans


def read_run_config(run_dir: Path) -> dict:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def model_shape(model: str | None):
    """The model's ModelConfig for FLOPs, or None when the model folder is not here."""
    if not model:
        return None
    try:
        from quasar_dist.model import resolve_model_path
        from quasar_dist.model.checkpoint import read_config

        return read_config(Path(resolve_model_path(model)))
    except Exception:  # the report must not fail because a model moved
        return None


def report_from_dir(run_dir: str | Path, plots: bool = True) -> dict:
    """Write DIR/report.json, DIR/report.md and DIR/plots/*.png; returns the report."""
    folder = Path(run_dir)
    results = read_results(folder)
    runs = read_runs(folder)
    config = read_run_config(folder)
    report = build_report(results, runs, config, model_shape(config.get("model")))
    names = write_plots(results, run_spans(results, runs), report, folder / "plots") if plots else []
    _write_text(folder / "report.json", json.dumps(report, indent=2) + "\n")
    _write_text(folder / "report.md", report_markdown(report, names))
    return report


def _write_text(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
