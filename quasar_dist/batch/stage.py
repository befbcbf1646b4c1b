"""Stage 2: `ReasonStage`, the replica as a Ray Data UDF (a callable class for an actor pool).

Each instance builds one ReplicaGang (`tp` rank actors in a placement group) once, then maps one
batch of tasks per call to output rows. Usable in a user's own pipeline too:

    ds.map_batches(ReasonStage, fn_constructor_kwargs={"model": "tiny"}, batch_size=32,
                   batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=2))

Input columns: `id`, `prompt` (and optionally `reference`, `kind`); output: OUTPUT_SCHEMA.
A null or empty prompt becomes an error row here; the engine makes one for a prompt too long
for the model's context; a replica that keeps failing makes error rows for its batch.
"""
from __future__ import annotations

import secrets
import time

import pyarrow as pa
import ray

from quasar_dist.parallel import ParallelConfig, ReplicaGang
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.util.typed_config import from_dict

from .metrics import StageMetrics
from .schema import error_row, output_row, output_table


def prompt_problem(prompt) -> str | None:
    """Why a prompt cannot be run at all, or None. (Length is the engine's check: it knows the cache.)"""
    if prompt is None:
        return "prompt is null"
    if not prompt.strip():
        return "prompt is empty"
    return None


class ReasonStage:
    def __init__(self, model: str = "tiny", *, mode: str = "gsot", gsot: dict | None = None,
                 parallel: dict | None = None, model_label: str | None = None, run_id: str = "",
                 ttm: str | None = None) -> None:
        self.reasoning = {**(gsot or {}), "mode": mode}
        from_dict(ReasoningConfig, self.reasoning, source="ReasonStage")  # fail here, not in every rank
        self.mode, self.model_label, self.run_id = mode, model_label or str(model), run_id
        self.gang = ReplicaGang(model, from_dict(ParallelConfig, parallel or {}, source="ReasonStage"), ttm=ttm,
                                placement_name=stage_placement_name(run_id))
        self.metrics = StageMetrics(mode=mode, model=self.model_label)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return solve_batch(self.gang, self.reasoning, batch, mode=self.mode, model_label=self.model_label,
                           run_id=self.run_id, metrics=self.metrics)

    def __del__(self) -> None:
        # Ray reaps the gang's actors when this actor dies, but its placement group only when
        # this actor exits cleanly: the job removes what a killed one left (stage_groups_prefix).
        gang = getattr(self, "gang", None)
        if gang is not None:
            try:
                gang.shutdown()
            except Exception:
                pass


def stage_groups_prefix(run_id: str) -> str:
    """The start of the placement-group names of every ReasonStage of run `run_id`."""
    return f"quasar/{run_id or 'stage'}/"


def stage_placement_name(run_id: str) -> str:
    """Per stage actor, and the same after Ray restarts it (its actor id does not change), so a
    restarted actor finds and removes the group its earlier life left."""
    owner = ray.get_runtime_context().get_actor_id() or f"driver-{secrets.token_hex(4)}"
    return stage_groups_prefix(run_id) + owner


def solve_batch(gang, reasoning: dict, batch: pa.Table, *, mode: str, model_label: str, run_id: str,
                metrics: StageMetrics) -> pa.Table:
    """One batch of tasks through a gang: output rows in order. Runnable prompts go to the gang
    in one call; the others (null, empty, not text) become error rows without reaching it."""
    tasks = batch.to_pylist()
    problems = [prompt_problem(t["prompt"]) for t in tasks]
    runnable = [t["prompt"] for t, problem in zip(tasks, problems) if problem is None]
    solved = iter(gang.solve(runnable, reasoning) if runnable else [])
    engine_rows = [error_row(problem) if problem else next(solved) for problem in problems]
    finished_at = time.time()
    rows = [
        output_row(t, r, mode=mode, model=model_label, run_id=run_id, finished_at=finished_at)
        for t, r in zip(tasks, engine_rows)
    ]
    metrics.record(rows)
    return output_table(rows)
