"""One cell of a sweep: a `quasar run` whose replicas are already up.

The same steps as batch/job.py run_batch, with the batch layer's own pieces (output lock,
prepare_output, resume plan, ledger, atomic result writer, run log, report); only the stream
differs: instead of a Ray Data pipeline that starts a ReplicaGang per pool actor (one model load
per run), the driver feeds the cell's batches to the model's ReplicaPool, which lives for all of
that model's cells.

    lock CELL/, prepare_output (temps cleaned, resume consistency, config.yaml)
    plan: ids to run now = dataset ids (after limit) - ids in CELL/results
    windows of batches -> ReplicaPool.map -> SharedGangStage -> ledger -> ResultWriter
    report: report.json, report.md, plots/ (report_from_dir, as `quasar run`)
"""
from __future__ import annotations

import threading

import pyarrow as pa

from quasar_dist.batch.config import RunConfig
from quasar_dist.batch.job import run_planned
from quasar_dist.batch.ledger import Ledger
from quasar_dist.batch.progress import ProgressLine
from quasar_dist.batch.results_store import ResultWriter
from quasar_dist.batch.sink import ResultSink, StreamOutcome
from quasar_dist.batch.task_plan import TaskPlan
from quasar_dist.parallel import ReplicaGang, ReplicaPool

from .check import DatasetScan
from .feed import SharedGangStage, task_batches, windows

# Batches per replica handed to one ReplicaPool.map call. Every replica stays busy within a
# window; between windows the driver reads the next batches (milliseconds).
BATCHES_PER_REPLICA = 4


def run_cell(cfg: RunConfig, pool: ReplicaPool, dataset: DatasetScan) -> dict:
    """Run (or resume) one cell on `pool`; returns its report (report.json's content)."""
    return run_planned(cfg, dataset.task_ids, lambda plan, run_id: stream_cell(cfg, dataset, plan, pool, run_id),
                       rerun="sweep", shared_replicas=True)


def stream_cell(cfg: RunConfig, dataset: DatasetScan, plan: TaskPlan, pool: ReplicaPool, run_id: str) -> StreamOutcome:
    sink = ResultSink(
        Ledger(plan.todo),
        ResultWriter(cfg.output, run_id, flush_rows=cfg.flush_rows, flush_interval_s=cfg.flush_interval_s),
        ProgressLine(len(plan.todo), interval_s=cfg.progress_interval_s, skipped=plan.num_skipped),
    )
    stage = SharedGangStage(cfg, run_id)
    sink_lock = threading.Lock()  # the pool's threads (one per replica) share the sink

    def solve_and_write(gang: ReplicaGang, batch: pa.Table) -> None:
        rows = stage(gang, batch)
        with sink_lock:
            sink.take(rows)

    batches = task_batches(dataset.spec, plan.todo, limit=cfg.limit, batch_size=cfg.batch_size)
    try:
        for window in windows(batches, len(pool.gangs) * BATCHES_PER_REPLICA):
            pool.map(solve_and_write, window)
    finally:
        outcome = sink.close()  # complete, checked rows are kept even when the stream failed
    return outcome
