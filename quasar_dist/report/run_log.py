"""OUTPUT/runs.jsonl: one line when an invocation starts and one when it ends (a killed run has
only the first). The report derives wall time and throughput from it and the results. Under a
URI (s3://...) there is no append: the file is read and written back whole (one writer per
run folder), which a kill leaves as the old file or the new one."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from quasar_dist.batch.folder_io import read_text, write_text
from quasar_dist.batch.uri import is_uri

RUN_LOG = "runs.jsonl"


def append_event(output: str | Path, run_id: str, event: str, **fields) -> None:
    line = json.dumps({"run_id": run_id, "event": event, "at": time.time(), **fields}, sort_keys=True)
    if is_uri(str(output)):
        write_text(output, RUN_LOG, (read_text(output, RUN_LOG) or "") + line + "\n")
        return
    with open(Path(output) / RUN_LOG, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_runs(output: str | Path) -> dict[str, dict]:
    """run_id -> {"start": {...}, "end": {...} or absent}, in start order. A torn last line (the
    writer killed mid-write) is skipped."""
    runs: dict[str, dict] = {}
    text = read_text(output, RUN_LOG)
    if text is None:
        return runs
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        runs.setdefault(record.get("run_id", "?"), {})[record.get("event", "?")] = record
    return runs
