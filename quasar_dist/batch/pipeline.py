"""The Ray Data stream: read_parquet -> prepare_tasks -> ReasonStage (actor pool of replicas).

Nothing is materialised: blocks flow through with Ray Data's backpressure, and the driver pulls
result blocks one at a time (job.py), so memory stays bounded whatever the dataset's size.
"""
from __future__ import annotations

import logging

import pyarrow as pa
import ray

from .config import RunConfig
from .inputs import InputSpec
from .prepare import prepare_tasks
from .stage import ReasonStage
from .uri import is_uri, resolve

# The stage actor only waits on its gang, whose rank actors reserve the real CPUs. It asks for no
# CPU at all: with the ranks holding all but one CPU and a read task holding that one, a stage
# actor asking for even 0.01 CPU could never be placed, and the stream would hang.
STAGE_ACTOR_CPUS = 0
# Batches queued per replica: one running, one ready, so a replica never waits for input.
BATCHES_IN_FLIGHT = 2


def configure_ray_data(show_progress_bars: bool = False) -> None:
    """One progress line is ours (progress.py); Ray Data's bars would interleave with it."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = show_progress_bars
    ctx.enable_operator_progress_bars = show_progress_bars
    ctx.enable_auto_log_stats = False
    ctx.print_on_execution_start = False
    # Ray 2.60's default Parquet reader (DataSourceV2) starts a pool of footer-reading actors,
    # four processes, before the first row is read: on a 2-core machine they compete with the
    # replica's start-up. The V1 reader reads the footers in its read tasks; a 200-task
    # `quasar run` took 30.5-30.7 s against 33.9-36.3 s with V2 (docs/benchmarks.md).
    ctx.use_datasource_v2 = False
    # Its log lines would too ("execution finished", and a traceback when a replica fails, which
    # the job turns into one line: ray_errors.py).
    logging.getLogger("ray.data").setLevel(logging.INFO if show_progress_bars else logging.CRITICAL)


def build_dataset(cfg: RunConfig, spec: InputSpec, todo_ref, *, run_id: str) -> ray.data.Dataset:
    # Every column is read as plain strings: files may encode text differently (dictionary,
    # large_string, string_view; column_types.py), and Ray Data refuses to merge such schemas.
    read_schema = pa.schema([(name, pa.string()) for name in spec.columns])
    files, filesystem = read_paths(spec.files_for(cfg.limit))
    tasks = ray.data.read_parquet(
        files, filesystem=filesystem, file_extensions=None,  # inputs.py chose the files
        columns=spec.columns, schema=read_schema,  # projection is pushed down into the read
    ).map_batches(
        prepare_tasks,
        batch_format="pyarrow",
        batch_size=None,  # whole blocks: the filter is cheap per row
        fn_kwargs=dict(prompt_col=spec.prompt_col, id_col=spec.id_col, answer_col=spec.answer_col,
                       kind_col=spec.kind_col, todo=todo_ref),
    )
    # Blocks of exactly one batch: a replica call then maps one block to one output block, which
    # reaches the driver (and disk) as soon as it is done. Without this, a whole input block's
    # batches would come back merged into one output block, at the end. (Streaming: no shuffle.)
    tasks = tasks.repartition(target_num_rows_per_block=cfg.batch_size, strict=True)
    return tasks.map_batches(
        ReasonStage,
        batch_format="pyarrow",
        batch_size=cfg.batch_size,
        fn_constructor_kwargs=dict(model=cfg.model, ttm=cfg.ttm, mode=cfg.mode, gsot=dict(cfg.gsot),
                                   parallel={**cfg.parallel, "tp": cfg.tp, "replicas": cfg.replicas},
                                   model_label=cfg.model, run_id=run_id),
        compute=ray.data.ActorPoolStrategy(size=cfg.replicas, max_tasks_in_flight_per_actor=BATCHES_IN_FLIGHT),
        num_cpus=STAGE_ACTOR_CPUS,
    )


def read_paths(files: list[str]) -> tuple[list[str], object]:
    """Local paths as they are; URIs as (paths inside the store, its pyarrow filesystem), so
    the read tasks on every node use the filesystem the driver checked (credentials are not in
    it: each node's filesystem finds them in the standard places)."""
    if not files or not is_uri(files[0]):
        return files, None
    filesystem = resolve(files[0])[0]
    return [resolve(f)[1] for f in files], filesystem
