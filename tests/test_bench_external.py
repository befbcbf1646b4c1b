"""The kv_budget_curve's external kvpress rows: run through their own venv where it exists;
where it does not (a fresh clone), no rows and a one-line reason, never an error."""
from __future__ import annotations

import pytest

from quasar_dist.bench import kvpress_external
from quasar_dist.model import resolve_model_path


def test_without_the_kvpress_venv_there_are_no_rows_and_the_reason_is_given(tmp_path, monkeypatch):
    monkeypatch.setattr(kvpress_external, "VENV_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    rows, status = kvpress_external.kvpress_rows(resolve_model_path("tiny"), 2, (0.25,))
    assert rows == [] and status.startswith("not run:") and "kvpress_check.py" in status and "\n" not in status


@pytest.mark.skipif(not kvpress_external.VENV_PYTHON.exists(), reason="no kvpress venv (benchmarks/kvpress_check.py sets it up)")
def test_kvpress_rows_come_in_the_curve_format():
    rows, status = kvpress_external.kvpress_rows(resolve_model_path("tiny"), 2, (0.25,), timeout_s=600)
    assert status.startswith("ran:")
    assert {r["method"] for r in rows} >= {"kvpress:none", "kvpress:StreamingLLMPress", "kvpress:SnapKVPress"}
    for row in rows:
        assert {"method", "budget", "accuracy", "flops_per_task", "wall_s"} <= set(row)
        assert 0.0 <= row["accuracy"] <= 1.0 and row["flops_per_task"] is None
