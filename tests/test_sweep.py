"""Evaluation sweeps (`quasar sweep`, jobs/eval_sweep.py): the grid, its one-line errors, the
sweep table, and a real sweep on two small random models (2 models x 2 modes, 4 tasks a cell):
killed with SIGKILL once sweep.parquet has its first row, then run again on one module-scoped
local Ray instance, where the rank actors it creates are counted (one per model, not per cell).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import yaml
from click.testing import CliRunner

from quasar_dist.cli import main
from quasar_dist.sweep.cells import expand_cells
from quasar_dist.sweep.config import load_sweep_config
from quasar_dist.sweep.plots import pareto_front
from quasar_dist.sweep.table import COLUMNS, append_row, read_rows
from process_groups import sigkill_driver_when

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
LIMIT = 4
RUN = {"limit": LIMIT, "batch_size": 2, "flush_rows": 2, "progress_interval_s": 0,
       "gsot": {"max_steps": 3, "max_batch_size": 2}}  # short generations: this tests the sweep, not the model
PLOTS = {"accuracy_vs_flops.png", "throughput.png"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    """Two models, so that "one load per model" differs from "one load per sweep"."""
    from quasar_dist.parallel.toy_model import write_toy_model

    root = tmp_path_factory.mktemp("models")
    return [str(write_toy_model(root / name, seed=seed)) for seed, name in enumerate(["toy-a", "toy-b"])]


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=4, include_dashboard=False)  # over-subscribed on 2 cores: fine for tests
    yield
    ray.shutdown()


def grid_yaml(path: Path, model_list: list[str], **fields) -> Path:
    data = {"models": model_list, "datasets": ["sample"], "modes": ["gsot", "cot"],
            "grid": {"max_new_tokens": [16]}, "run": RUN, **fields}
    path.write_text(yaml.safe_dump(data))
    return path


def quasar(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


# -- no Ray ------------------------------------------------------------------------------------
def test_grid_has_stable_ids_cot_cells_first_and_one_cot_cell_per_non_gsot_setting(tmp_path, models):
    path = grid_yaml(tmp_path / "g.yaml", models[:1], grid={"evict_below": [0.3, 0.5], "max_new_tokens": [16, 32]})
    cells = expand_cells(load_sweep_config(str(path)))
    assert [c.mode for c in cells] == ["cot"] * 2 + ["gsot"] * 4  # evict_below means nothing to CoT
    assert [c.settings for c in cells[:2]] == [{"max_new_tokens": 16}, {"max_new_tokens": 32}]
    assert len({c.cell_id for c in cells}) == 6
    assert cells[2].cell_id.startswith("toy-a-sample-gsot-evict_below=0.3-max_new_tokens=16-")
    assert cells[2].gsot == {**RUN["gsot"], "evict_below": 0.3, "max_new_tokens": 16}
    again = expand_cells(load_sweep_config(str(path), output=str(tmp_path / "elsewhere")))
    assert [c.cell_id for c in again] == [c.cell_id for c in cells]  # ids depend on the settings only
    path = grid_yaml(tmp_path / "g.yaml", models[:1], grid={"evict_below": [0.3, 0.5], "max_new_tokens": [16, 64]})
    changed = {c.cell_id for c in expand_cells(load_sweep_config(str(path)))}
    assert len(changed & {c.cell_id for c in cells}) == 3  # the cells whose settings did not change


def test_shipped_small_grid_is_2_x_2_on_the_shipped_model():
    sweep = load_sweep_config(str(REPO / "configs" / "sweeps" / "small.yaml"))
    cells = expand_cells(sweep)
    assert sweep.models == ["tiny"] and len(cells) == 4
    assert {(c.mode, c.settings["max_new_tokens"]) for c in cells} == {(m, n) for m in ("gsot", "cot") for n in (24, 256)}
    assert 0 < sweep.run["limit"] <= 32


@pytest.mark.parametrize("case", ["unknown_key", "empty_axis", "unknown_grid_key", "unknown_model", "unknown_dataset"])
def test_bad_grid_stops_with_one_line_before_anything_starts(tmp_path, models, case):
    fields, expected = {
        "unknown_key": ({"modles": ["x"]}, "unknown key 'modles'"),
        "empty_axis": ({"modes": []}, "modes is empty"),
        "unknown_grid_key": ({"grid": {"evict_bellow": [0.1]}}, "unknown grid key 'grid.evict_bellow'"),
        "unknown_model": ({"models": [models[0], str(tmp_path / "no-model")]}, "no-model: not a shipped model name"),
        "unknown_dataset": ({"datasets": ["sample", str(tmp_path / "nope.parquet")]}, "nope.parquet: no such file"),
    }[case]
    path = grid_yaml(tmp_path / "bad.yaml", models, **fields)
    was_initialized = ray.is_initialized()
    code, output = quasar("sweep", str(path), "--output", str(tmp_path / "out"))
    assert code == 1 and output.startswith("quasar: error: ") and output.strip().count("\n") == 0, output
    assert expected in output
    assert not (tmp_path / "out").exists()  # nothing written, so nothing loaded either
    assert ray.is_initialized() == was_initialized


def test_sweep_table_appends_rows_with_one_schema(tmp_path):
    row = {c: None for c in COLUMNS}
    row.update(cell_id="a", model="m", dataset="sample", mode="cot", settings="{}", tasks=4, completed=4, errors=0,
               tasks_per_s=1.5, finished_at=time.time())
    append_row(tmp_path, row)
    append_row(tmp_path, {**row, "cell_id": "b", "mode": "gsot", "accuracy": 0.5, "cot_cell": "a", "compute_reduction": 0.25})
    rows = read_rows(tmp_path)
    assert [(r["cell_id"], r["accuracy"], r["cot_cell"]) for r in rows] == [("a", None, None), ("b", 0.5, "a")]
    assert pq.ParquetFile(tmp_path / "sweep.parquet").metadata.num_row_groups == 2  # appended, not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["sweep.parquet"]  # no temp left behind


def test_pareto_front_keeps_the_cells_nothing_beats():
    points = [(10.0, 0.5), (5.0, 0.5), (20.0, 0.9), (15.0, 0.4), (5.0, 0.3), (30.0, 0.9), (20.0, 0.9)]
    assert pareto_front(points) == [1, 2, 6]  # equal cells are both on it


# -- on Ray ------------------------------------------------------------------------------------
def test_sweep_killed_after_its_first_cell_resumes_without_recomputing_it(ray_local, tmp_path, models):
    config = grid_yaml(tmp_path / "grid.yaml", models)
    cells = expand_cells(load_sweep_config(str(config)))
    out = tmp_path / "sweep"
    sigkill_driver_when([PYTHON, "jobs/eval_sweep.py", "--config", str(config), "--output", str(out)],
                        lambda: table_rows(out) >= 1, tmp_path / "killed.log", cwd=REPO)
    killed = read_rows(out)
    log = (tmp_path / "killed.log").read_text()
    # the second model's cells are still to do (it has to load first): the rerun shows the sharing
    assert 1 <= len(killed) <= 2 and [r["cell_id"] for r in killed] == [c.cell_id for c in cells[:len(killed)]], log
    first = out / "cells" / killed[0]["cell_id"]
    untouched = file_states(first)

    before = rank_workers_created()
    code, output = quasar("sweep", str(config), "--output", str(out))
    assert code == 0, output
    todo = cells[len(killed):]
    assert rank_workers_created() - before == len({c.model for c in todo}) < len(todo)  # one load per model
    rows = read_rows(out)
    assert [r["cell_id"] for r in rows] == [c.cell_id for c in cells]  # each cell once, in grid order
    assert file_states(first) == untouched  # a finished cell is not even opened
    for cell in cells:
        results = pq.read_table(out / "cells" / cell.cell_id / "results", columns=["id"]).column("id").to_pylist()
        assert len(results) == len(set(results)) == LIMIT  # the cell in flight resumed, exactly once
        report = json.loads((out / "cells" / cell.cell_id / "report.json").read_text())
        assert (report["model"], report["mode"], report["tasks"]) == (cell.model, cell.mode, LIMIT)
    for row in rows:
        assert row["tasks"] == LIMIT and row["tasks_per_s"] > 0 and row["flops_per_task"] > 0
        if row["mode"] == "gsot":  # against the same model and dataset's CoT cell
            cot = next(r for r in rows if r["mode"] == "cot" and r["model"] == row["model"])
            assert row["cot_cell"] == cot["cell_id"]
            assert row["compute_reduction"] == pytest.approx(1 - row["flops_per_task"] / cot["flops_per_task"])
    markdown = (out / "sweep.md").read_text()
    assert all(c.cell_id in markdown for c in cells) and "Pareto" in markdown
    assert PLOTS <= {p.name for p in (out / "plots").iterdir()}

    before = rank_workers_created()
    code, output = quasar("sweep", str(config), "--output", str(out))  # finished: loads and runs nothing
    assert code == 0 and "(0 run now, 4 done earlier), 0 model load(s)" in output, output
    assert rank_workers_created() == before and len(read_rows(out)) == 4


def table_rows(out: Path) -> int:
    path = out / "sweep.parquet"
    return pq.read_metadata(path).num_rows if path.is_file() else 0  # replaced atomically: always whole


def file_states(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def rank_workers_created() -> int:
    """Rank actors (one per model load with tp=1) created in this Ray instance so far, dead ones included."""
    from ray._private.state import actors  # the GCS actor table (no dashboard needed)

    return sum(1 for a in actors().values() if a["ActorClassName"] == "RankWorker")
