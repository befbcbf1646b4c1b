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

import secrets
import threading
import time

import pyarrow as pa

from quasar_dist.batch.config import RunConfig
from quasar_dist.batch.job import peak_rss_mb, summary_line
from quasar_dist.batch.ledger import Ledger
from quasar_dist.batch.output_folder import prepare_output
from quasar_dist.batch.output_lock import output_lock
from quasar_dist.batch.progress import ProgressLine
from quasar_dist.batch.results_store import ResultWriter, read_done_hashes
from quasar_dist.batch.sink import ResultSink, StreamOutcome
from quasar_dist.batch.task_plan import TaskPlan, plan_tasks
from quasar_dist.parallel import ReplicaGang, ReplicaPool
from quasar_dist.report.build import report_from_dir
from quasar_dist.report.run_log import append_event
from quasar_dist.util.errors import ResourceError

from .check import DatasetScan
from .feed import SharedGangStage, task_batches, windows

# Batches per replica handed to one ReplicaPool.map call. Every replica stays busy within a
# window; between windows the driver reads the next batches (milliseconds).
BATCHES_PER_REPLICA = 4


def run_cell(cfg: RunConfig, pool: ReplicaPool, dataset: DatasetScan) -> dict:
    """Run (or resume) one cell on `pool`; returns its report (report.json's content)."""
    started = time.time()
    with output_lock(cfg.output):
        prepare_output(cfg)
        plan = plan_tasks(dataset.task_ids, read_done_hashes(cfg.output))
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        append_event(cfg.output, run_id, "start", tasks=plan.num_tasks, todo=len(plan.todo),
                     skipped=plan.num_skipped, mode=cfg.mode, model=cfg.model, tp=cfg.tp,
                     replicas=cfg.replicas, shared_replicas=True)
        outcome = stream_cell(cfg, dataset, plan, pool, run_id) if len(plan.todo) else StreamOutcome()
        append_event(cfg.output, run_id, "end", wall_s=time.time() - started, computed=outcome.computed,
                     errors=outcome.errors, dropped=outcome.dropped, missing=outcome.missing,
                     first_result_at=outcome.first_result_at, driver_peak_rss_mb=peak_rss_mb())
        report = report_from_dir(cfg.output, plots=cfg.plots)
    print(summary_line(cfg, report, outcome, plan), flush=True)
    if outcome.missing:
        raise ResourceError(f"{outcome.missing} task(s) of {cfg.output} never came back; run the same sweep again to finish them")
    return report


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
