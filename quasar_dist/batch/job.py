"""`quasar run`: the batch job, start to finish.

    check inputs (footers, id column) and the model's config    -- one-line errors, nothing loaded yet
    prepare OUTPUT (resume: ids already in results/ are skipped)
    plan: the ids to run now (sorted 64-bit hashes)
    stream: read_parquet -> prepare_tasks -> ReasonStage x replicas -> driver: check, write, progress
    report: report.json, report.md, plots/ from everything in results/
"""
from __future__ import annotations

import resource
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import ray

from quasar_dist.report.build import report_from_dir
from quasar_dist.report.run_log import append_event
from quasar_dist.parallel.placement import remove_named_groups
from quasar_dist.util.errors import ResourceError

from .config import RunConfig
from .inputs import InputSpec, inspect_inputs
from .ledger import Ledger
from .model_check import check_model, model_gsot
from .output_folder import prepare_output
from .output_lock import output_lock
from .pipeline import build_dataset, configure_ray_data
from .progress import ProgressLine
from .sink import ResultSink, StreamOutcome
from .stage import stage_groups_prefix
from .ray_errors import user_facing_cause
from .ray_session import local_num_cpus, ray_session
from .resolve import flags_to_overrides, parallel_config, resolve_run_config
from .results_store import ResultWriter, read_done_hashes
from .task_plan import TaskPlan, plan_tasks, scan_task_ids
from .uri import is_uri, strip_query


def run_from_cli(**options) -> dict:
    """Entry point of `quasar run` and jobs/batch_reason.py (options as the CLI names them)."""
    cfg = resolve_run_config(options.get("config_path"), flags_to_overrides(options))
    return run_batch(cfg)


def run_batch(cfg: RunConfig) -> dict:
    """Run the job described by `cfg`; returns the report (report.json's content)."""
    spec = inspect_inputs(cfg.input, prompt_col=cfg.prompt_col, id_col=cfg.id_col,
                          answer_col=cfg.answer_col, kind_col=cfg.kind_col)
    task_ids = scan_task_ids(spec, cfg.limit)  # null / duplicate ids
    model_config = check_model(cfg.model, cfg.tp, cfg.ttm, cfg.gsot, cfg.mode)
    cfg = replace(cfg, gsot=model_gsot(model_config, cfg.mode, cfg.gsot))  # what config.yaml records
    return run_planned(cfg, task_ids, lambda plan, run_id: stream_results(cfg, spec, plan, run_id), rerun="command")


def run_planned(cfg: RunConfig, task_ids, stream: Callable[[TaskPlan, str], StreamOutcome], *, rerun: str,
                **start_fields) -> dict:
    """The steps every run shares (a `quasar run`, a sweep cell): lock OUTPUT, prepare it, plan
    what is left to do, stream it with `stream(plan, run_id)`, log start and end, report."""
    started = time.time()
    with output_lock(cfg.output):
        try:
            prepare_output(cfg)
        except OSError as exc:  # e.g. no space left for config.yaml
            raise ResourceError(f"cannot prepare output {cfg.output} ({exc.strerror or type(exc).__name__})") from None
        plan = plan_tasks(task_ids, read_done_hashes(cfg.output))
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)  # sortable, unique
        append_event(cfg.output, run_id, "start", tasks=plan.num_tasks, todo=len(plan.todo),
                     skipped=plan.num_skipped, mode=cfg.mode, model=cfg.model, tp=cfg.tp, replicas=cfg.replicas,
                     **start_fields)
        outcome = stream(plan, run_id) if len(plan.todo) else StreamOutcome()
        append_event(cfg.output, run_id, "end", wall_s=time.time() - started, computed=outcome.computed,
                     errors=outcome.errors, dropped=outcome.dropped, missing=outcome.missing,
                     first_result_at=outcome.first_result_at, driver_peak_rss_mb=peak_rss_mb())
        report = report_from_dir(cfg.output, plots=cfg.plots)
    print(summary_line(cfg, report, outcome, plan), flush=True)
    if outcome.missing:
        raise ResourceError(f"{outcome.missing} task(s) of {cfg.output} never came back from the cluster; "
                            f"run the same {rerun} again to finish them")
    return report


def stream_results(cfg: RunConfig, spec: InputSpec, plan: TaskPlan, run_id: str) -> StreamOutcome:
    """Run the planned tasks; every result is checked by the ledger and written atomically."""
    sink = ResultSink(
        Ledger(plan.todo),
        ResultWriter(cfg.output, run_id, flush_rows=cfg.flush_rows, flush_interval_s=cfg.flush_interval_s),
        ProgressLine(len(plan.todo), interval_s=cfg.progress_interval_s, skipped=plan.num_skipped),
    )
    reserved = cfg.tp * cfg.replicas * parallel_config(cfg).cpus_per_rank
    with ray_session(cfg.address, num_cpus=local_num_cpus(cfg.num_cpus, reserved), show_worker_logs=cfg.verbose):
        configure_ray_data(show_progress_bars=cfg.verbose)
        dataset = build_dataset(cfg, spec, ray.put(plan.todo), run_id=run_id)
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1))
        try:
            for batch in batches:
                sink.take(batch)
        except Exception as exc:
            cause = user_facing_cause(exc)  # a replica's one-line error, unwrapped from Ray's
            if cause is not None:
                raise cause from None
            raise
        finally:
            try:
                outcome = sink.close()
            finally:
                release_stream(batches, run_id)
    return outcome


def release_stream(batches, run_id: str) -> None:
    """Stop the stream now, not when the garbage collector finds the iterator (an exception's
    traceback keeps it alive): its executor kills the replica actors; then remove the placement
    groups they leave behind. In a caller's long-lived session a failed run would otherwise keep
    its replicas' CPUs, and after a few the next run's read tasks never got one (a hang)."""
    batches.close()
    try:
        remove_named_groups(stage_groups_prefix(run_id))
    except Exception:  # the session is going away: it takes the groups with it; keep the run's own error
        pass


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def summary_line(cfg: RunConfig, report: dict, outcome: StreamOutcome, plan: TaskPlan) -> str:
    accuracy = "n/a" if report["accuracy"] is None else f"{report['accuracy']:.1%}"
    where = strip_query(cfg.output) if is_uri(cfg.output) else Path(cfg.output).resolve()
    return (f"quasar: {report['tasks']} tasks in {where} ({outcome.computed} run now, "
            f"{plan.num_skipped} resumed), {report['errors']} errors, accuracy {accuracy}, "
            f"{report['tasks_per_s']:.2f} tasks/s, {report['generated_tokens_per_s']:,.0f} gen tok/s")
