"""Wall time of the runs that produced a folder's results, from runs.jsonl and the rows' run_id.

A run folder may be filled by several invocations (a killed run, then a resume). The rates in
the report are rows / wall time summed over the invocations that computed at least one row; an
invocation that only found everything done adds nothing. A killed invocation has no "end"
record: its wall time runs from its start to its last committed batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(slots=True)
class RunSpan:
    run_id: str
    start: float  # unix time
    wall_s: float
    rows: int


def run_spans(results: pa.Table, runs: dict[str, dict]) -> list[RunSpan]:
    """One span per invocation with rows in `results`, in start order."""
    spans = []
    run_ids = results.column("run_id").to_numpy(zero_copy_only=False)
    finished = results.column("finished_at").to_numpy(zero_copy_only=False)
    for run_id in dict.fromkeys(run_ids):  # first-seen order, unique
        mine = run_ids == run_id
        last_batch = float(np.nanmax(finished[mine]))
        record = runs.get(run_id, {})
        end = record.get("end")
        if "start" in record:
            start = record["start"]["at"]
            wall = end["wall_s"] if end else last_batch - start
        else:  # results without a log (copied folder): their own time span
            start = float(np.nanmin(finished[mine]))
            wall = last_batch - start
        spans.append(RunSpan(str(run_id), start, max(float(wall), 1e-9), int(mine.sum())))
    return sorted(spans, key=lambda s: s.start)


def total_wall_s(spans: list[RunSpan]) -> float:
    return float(sum(s.wall_s for s in spans))


def last_invocation(runs: dict[str, dict]) -> dict:
    """The most recent invocation's records ({} when there is no log)."""
    if not runs:
        return {}
    return max(runs.values(), key=lambda r: r.get("start", r.get("end", {})).get("at", 0.0))


def column_sum(results: pa.Table, name: str) -> int:
    value = pc.sum(results.column(name)).as_py()
    return int(value or 0)
