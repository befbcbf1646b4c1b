"""`quasar report DIR` (and the end of every `quasar run`): report.json, report.md and plots/
rebuilt from the folder's results, config.yaml and runs.jsonl alone."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml

from quasar_dist.batch.folder_io import read_text, upload_folder, write_text
from quasar_dist.batch.uri import is_uri

from .markdown import report_markdown
from .plots import write_plots
from .results_table import read_results
from .run_log import read_runs
from .summary import build_report
from .throughput import run_spans


def read_run_config(run_dir: str | Path) -> dict:
    text = read_text(run_dir, "config.yaml")
    return (yaml.safe_load(text) or {}) if text is not None else {}


def model_shape(model: str | None):
    """The model's ModelConfig for FLOPs, or None when the model folder is not here."""
    if not model:
        return None
    try:
        from quasar_dist.model.folder import read_config, resolve_model_path

        return read_config(Path(resolve_model_path(model)))
    except Exception:  # the report must not fail because a model moved
        return None


def report_from_dir(run_dir: str | Path, plots: bool = True) -> dict:
    """Write DIR/report.json, DIR/report.md and DIR/plots/*.png; returns the report. DIR may be
    a URI (s3://...): the plots are drawn in a local temp folder, then uploaded."""
    folder = str(run_dir) if is_uri(str(run_dir)) else Path(run_dir)
    results = read_results(folder)
    runs = read_runs(folder)
    config = read_run_config(folder)
    report = build_report(results, runs, config, model_shape(config.get("model")))
    names = _plots(folder, results, runs, report) if plots else []
    write_text(folder, "report.json", json.dumps(report, indent=2) + "\n")
    write_text(folder, "report.md", report_markdown(report, names))
    return report


def _plots(folder: str | Path, results, runs, report: dict) -> list[str]:
    spans = run_spans(results, runs)
    if not is_uri(str(folder)):
        return write_plots(results, spans, report, Path(folder) / "plots")
    with tempfile.TemporaryDirectory(prefix="quasar-plots-") as local:
        names = write_plots(results, spans, report, Path(local))
        upload_folder(Path(local), str(folder), "plots")
    return names
