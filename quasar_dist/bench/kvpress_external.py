"""The curve's external rows (`kvpress:<press>`, issue #15): the same long tasks through
transformers and NVIDIA's kvpress presses, run by benchmarks/kvpress_check.py in a venv of its own
(kvpress 0.5.5 pins transformers < 5.3; the setup is in that script's docstring). Where that venv
is absent (a fresh clone, a pip install) there are no such rows and the reason is returned: the
bench does not install anything. FLOPs are not counted for these rows (another library's
forward), so they carry `flops_per_task: None` and stay out of the accuracy-vs-FLOPs plot."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / "benchmarks" / ".kvpress-venv" / "bin" / "python"
SCRIPT = REPO / "benchmarks" / "kvpress_check.py"


def kvpress_rows(model_folder: str | Path, tasks_per_kind: int, budgets, timeout_s: float = 3600) -> tuple[list[dict], str]:
    """(rows, status): rows in the curve's format, one per (press, budget) plus kvpress's full-cache
    run (`kvpress:none`); status says whether it ran, or why not."""
    if not (VENV_PYTHON.exists() and SCRIPT.exists()):
        return [], f"not run: {VENV_PYTHON} is absent (setup: benchmarks/kvpress_check.py)"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "kvpress.json"
        cmd = [str(VENV_PYTHON), str(SCRIPT), "--model", str(model_folder), "--n", str(tasks_per_kind),
               "--json", str(out), "--threads", str(torch.get_num_threads()), "--budgets", *map(str, budgets)]
        try:
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return [], f"not finished within {timeout_s:.0f} s"
        if done.returncode != 0 or not out.exists():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:]
            return [], f"failed (exit {done.returncode}): {last[0][:200] if last else 'no output'}"
        rows = json.loads(out.read_text(encoding="utf-8"))
    for row in rows:
        row.setdefault("flops_per_task", None)
    return rows, f"ran: {len(rows)} rows (kvpress, {tasks_per_kind} tasks per kind)"
