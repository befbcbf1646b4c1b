"""`quasar_dist.build_processor`: the replica stage for users' own Ray Data pipelines, in Ray
Data LLM's shape (`processor = build_llm_processor(config, preprocess=..., postprocess=...)`,
then `ds = processor(ds)`):

    processor = quasar_dist.build_processor(
        {"model": "tiny", "mode": "gsot", "replicas": 2},
        preprocess=lambda row: {"prompt": row["question"], "answer": row["gold"]},
        postprocess=lambda row: {"id": row["id"], "answer": row["answer"], "ok": row["correct"]},
    )
    ds = processor(ray.data.read_parquet("s3://bucket/tasks/"))

Every step is lazy (nothing runs until the user consumes `ds`). The stage is ReasonStage, as in
`quasar run`: the same output rows (OUTPUT_SCHEMA), error rows for null/empty/over-long prompts,
and metrics. Columns the stage does not produce are carried through to postprocess, so a user
keeps whatever else was on the row. What the batch job adds on top (resume, exactly-once files,
the report) stays in `quasar run`: here the user's pipeline owns reading and writing.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import pyarrow as pa

from quasar_dist.util.typed_config import from_dict

from .model_check import check_model, model_gsot
from .pipeline import BATCHES_IN_FLIGHT, STAGE_ACTOR_CPUS
from .prepare import TASK_SCHEMA, as_strings
from .ids import derived_ids, ids_as_strings
from .processor_config import ProcessorConfig
from .stage import ReasonStage
from quasar_dist.util.errors import InputError

RowFn = Callable[[dict], dict]


def build_processor(config: ProcessorConfig | dict, preprocess: RowFn | None = None,
                    postprocess: RowFn | None = None) -> "Processor":
    """A callable `ray.data.Dataset -> ray.data.Dataset`; the config is checked here, the model
    folder too (one-line errors before any actor starts)."""
    cfg = config if isinstance(config, ProcessorConfig) else from_dict(ProcessorConfig, dict(config), source="build_processor")
    from quasar_dist.parallel.config import ParallelConfig
    from quasar_dist.reasoning.config import ReasoningConfig

    from_dict(ReasoningConfig, {**cfg.gsot, "mode": cfg.mode}, source="build_processor", prefix="gsot.")
    from_dict(ParallelConfig, {**cfg.parallel, "tp": cfg.tp, "replicas": cfg.replicas}, source="build_processor",
              prefix="parallel.")
    model_config = check_model(cfg.model, cfg.tp, cfg.ttm, cfg.gsot, cfg.mode)
    return Processor(replace(cfg, gsot=model_gsot(model_config, cfg.mode, cfg.gsot)), preprocess, postprocess)


class Processor:
    def __init__(self, cfg: ProcessorConfig, preprocess: RowFn | None, postprocess: RowFn | None) -> None:
        self.cfg, self.preprocess, self.postprocess = cfg, preprocess, postprocess

    def __call__(self, ds):
        import ray

        cfg = self.cfg
        if self.preprocess is not None:
            ds = ds.map(self.preprocess)
        ds = ds.map_batches(
            PassThroughStage,
            batch_format="pyarrow",
            batch_size=cfg.batch_size,
            fn_constructor_kwargs=dict(model=cfg.model, ttm=cfg.ttm, mode=cfg.mode, gsot=dict(cfg.gsot),
                                       parallel={**cfg.parallel, "tp": cfg.tp}, model_label=cfg.model,
                                       columns=dict(prompt_col=cfg.prompt_col, id_col=cfg.id_col,
                                                    answer_col=cfg.answer_col, kind_col=cfg.kind_col)),
            compute=ray.data.ActorPoolStrategy(size=cfg.replicas, max_tasks_in_flight_per_actor=BATCHES_IN_FLIGHT),
            num_cpus=STAGE_ACTOR_CPUS,
        )
        if self.postprocess is not None:
            ds = ds.map(self.postprocess)
        return ds


class PassThroughStage(ReasonStage):
    """ReasonStage on the user's columns: tasks taken from them, output rows in the same order,
    the user's other columns appended (an output column of the same name wins)."""

    def __init__(self, model: str, *, columns: dict, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.columns = columns

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = super().__call__(to_tasks(batch, **self.columns))
        for name in batch.column_names:
            if name not in out.column_names and name not in self.columns.values():
                out = out.append_column(name, batch.column(name))
        return out


def to_tasks(batch: pa.Table, *, prompt_col: str, id_col: str, answer_col: str, kind_col: str) -> pa.Table:
    """The stage's task columns (id, prompt, reference, kind; strings) from the user's."""
    if prompt_col not in batch.column_names:
        raise InputError(f"build_processor: rows have no {prompt_col!r} column (columns: {', '.join(batch.column_names)}); "
                         "map your rows to one with preprocess=")
    prompts = as_strings(batch, prompt_col)
    present = lambda c: c if c in batch.column_names else None  # noqa: E731
    ids = ids_as_strings(batch.column(id_col)) if present(id_col) else derived_ids(prompts)
    return pa.Table.from_arrays([ids, prompts, as_strings(batch, present(answer_col)),
                                 as_strings(batch, present(kind_col))], schema=TASK_SCHEMA)
