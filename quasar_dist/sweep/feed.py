"""What a cell sends to a shared replica, and what comes back.

`task_batches` reads a dataset's task columns on the driver, one record batch at a time, keeps
the planned ids (batch/prepare.py prepare_tasks, as the Ray Data stream does) and cuts them into
batches of `batch_size`. Memory stays bounded by one record batch plus one window of batches.

`SharedGangStage` maps one batch to output rows on whichever gang it is given: the same mapping
as batch/stage.py ReasonStage (prompt_problem, error_row, output_row, output_table, StageMetrics),
but for a gang it does not own. ReasonStage builds its gang in its constructor and shuts it down
when it is deleted; a sweep's gangs outlive every cell.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from quasar_dist.batch.config import RunConfig
from quasar_dist.batch.inputs import InputSpec, open_parquet
from quasar_dist.batch.metrics import StageMetrics
from quasar_dist.batch.prepare import prepare_tasks
from quasar_dist.batch.stage import solve_batch
from quasar_dist.parallel import ReplicaGang

READ_ROWS = 4096


def task_batches(spec: InputSpec, todo: np.ndarray, *, limit: int | None, batch_size: int) -> Iterator[pa.Table]:
    """Tables of `batch_size` tasks (the last may be shorter) with the job's task columns, for the
    ids in `todo` among the first `limit` input rows, in file order."""
    pending: list[pa.Table] = []
    num_pending = 0
    for tasks in _planned_tasks(spec, todo, limit):
        pending.append(tasks)
        num_pending += tasks.num_rows
        while num_pending >= batch_size:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, batch_size)
            rest = merged.slice(batch_size)
            pending, num_pending = [rest], rest.num_rows
    if num_pending:
        yield pa.concat_tables(pending)


def _planned_tasks(spec: InputSpec, todo: np.ndarray, limit: int | None) -> Iterator[pa.Table]:
    left = spec.num_rows if limit is None else limit
    found = 0
    for file in spec.files_for(limit):
        for batch in open_parquet(file).iter_batches(columns=spec.columns, batch_size=READ_ROWS):
            if left <= 0 or found >= len(todo):  # past the limit, or every planned id already read
                return
            rows = pa.Table.from_batches([batch]).slice(0, left)
            left -= rows.num_rows
            tasks = prepare_tasks(rows, prompt_col=spec.prompt_col, id_col=spec.id_col, answer_col=spec.answer_col,
                                  kind_col=spec.kind_col, todo=todo)
            found += tasks.num_rows
            if tasks.num_rows:
                yield tasks


def windows(batches: Iterable[pa.Table], size: int) -> Iterator[list[pa.Table]]:
    """Lists of at most `size` batches: what one ReplicaPool.map call spreads over the replicas."""
    window: list[pa.Table] = []
    for batch in batches:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


class SharedGangStage:
    def __init__(self, cfg: RunConfig, run_id: str) -> None:
        self.reasoning = {**cfg.gsot, "mode": cfg.mode}  # what ReasonStage sends to its gang
        self.mode, self.model_label, self.run_id = cfg.mode, cfg.model, run_id
        self.metrics = StageMetrics(mode=cfg.mode, model=cfg.model)

    def __call__(self, gang: ReplicaGang, batch: pa.Table) -> pa.Table:
        return solve_batch(gang, self.reasoning, batch, mode=self.mode, model_label=self.model_label,
                           run_id=self.run_id, metrics=self.metrics)
