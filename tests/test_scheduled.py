"""The scheduled daily run (jobs/scheduled_run.py): date checks, the day's folder, and
idempotence: the same day run twice on one module-scoped local Ray instance computes once,
the second run recomputes nothing and leaves the same results."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import yaml
from click.testing import CliRunner

from quasar_dist.data.tasks import make_tasks, write_tasks
from quasar_dist.util.typed_config import ConfigError

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
SCRIPT = REPO / "jobs" / "scheduled_run.py"
DAY = "2026-01-15"


def load_script():
    spec = importlib.util.spec_from_file_location("scheduled_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scheduled_run = load_script()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    from quasar_dist.parallel.toy_model import write_toy_model

    return str(write_toy_model(tmp_path_factory.mktemp("toy")))


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=4, include_dashboard=False)
    yield
    ray.shutdown()


def test_dates_are_checked_and_name_the_days_folder():
    today = dt.date(2026, 3, 1)
    assert scheduled_run.run_date(None, today) == today
    assert scheduled_run.run_date("2024-02-29", today) == dt.date(2024, 2, 29)  # backfill of a leap day
    for bad, words in [("2026-1-5", "expected YYYY-MM-DD"), ("20260105", "expected YYYY-MM-DD"),
                       ("2026-02-30", "day is out of range"), ("2026-03-02", "in the future")]:
        with pytest.raises(ConfigError, match=words):
            scheduled_run.run_date(bad, today)
    assert scheduled_run.dated_output("/data/daily", dt.date(2026, 1, 5)) == "/data/daily/date=2026-01-05"


def test_bad_date_exit_code_and_stderr_of_the_real_script():
    proc = subprocess.run([PYTHON, str(SCRIPT), "--config", "configs/runs/daily.yaml", "--date", "2026-13-01"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["quasar: error: --date 2026-13-01: month must be in 1..12"]


def test_shipped_daily_config_is_a_run_config():
    from quasar_dist.batch.resolve import resolve_run_config

    cfg = resolve_run_config(str(REPO / "configs" / "runs" / "daily.yaml"))
    assert cfg.model == "tiny" and cfg.resume


def test_a_day_run_twice_computes_once(ray_local, tmp_path, model):
    day_input = tmp_path / "inputs" / f"date={DAY}" / "tasks.parquet"
    day_input.parent.mkdir(parents=True)
    ids = [t["id"] for t in make_tasks("mixed", 6, 3)]
    write_tasks(make_tasks("mixed", 6, 3), day_input)
    config = tmp_path / "daily.yaml"
    config.write_text(yaml.safe_dump({
        "model": model, "input": str(tmp_path / "inputs" / "date={date}" / "tasks.parquet"), "batch_size": 2,
        "resume": False,  # the schedule turns resume on whatever the config says: reruns must not recompute
        "progress_interval_s": 0, "gsot": {"max_steps": 3, "max_new_tokens": 16, "max_batch_size": 2},
    }))
    args = ["--config", str(config), "--date", DAY, "--output", str(tmp_path / "daily")]
    folder = tmp_path / "daily" / f"date={DAY}"

    first = CliRunner().invoke(scheduled_run.main, args)
    assert first.exit_code == 0, first.output
    results = {p.name: p.read_bytes() for p in (folder / "results").iterdir()}
    assert sorted(pq.read_table(folder / "results").column("id").to_pylist()) == sorted(ids)

    second = CliRunner().invoke(scheduled_run.main, args)
    assert second.exit_code == 0, second.output
    assert {p.name: p.read_bytes() for p in (folder / "results").iterdir()} == results  # nothing recomputed
    report = json.loads((folder / "report.json").read_text())
    assert (report["tasks"], report["computed_last_run"], report["skipped_resumed"]) == (6, 0, 6)
    assert [p.name for p in (tmp_path / "daily").iterdir()] == [f"date={DAY}"]
