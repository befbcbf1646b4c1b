"""OUTPUT/runs.jsonl: one line when an invocation starts and one when it ends (a killed run has
only the first). The report derives wall time and throughput from it and the results."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

RUN_LOG = "runs.jsonl"


def append_event(output: str | Path, run_id: str, event: str, **fields) -> None:
    line = json.dumps({"run_id": run_id, "event": event, "at": time.time(), **fields}, sort_keys=True)
    with open(Path(output) / RUN_LOG, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_runs(output: str | Path) -> dict[str, dict]:
    """run_id -> {"start": {...}, "end": {...} or absent}, in start order. A torn last line (the
    writer killed mid-write) is skipped."""
    path = Path(output) / RUN_LOG
    runs: dict[str, dict] = {}
    if not path.is_file():
        return runs
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        runs.setdefault(record.get("run_id", "?"), {})[record.get("event", "?")] = record
    return runs
