"""Per-task reasoning state (what the loop remembers between boundaries) and its output row."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

from quasar_dist.engine.sequence import Checkpoint, Counters, Sequence

from .steps import output_steps


@dataclass(slots=True)
class Task:
    index: int
    seq: Sequence | None  # None when the task was refused before reaching the engine
    error: str | None = None
    prompt_tokens: int = 0
    heats: list[float] = field(default_factory=list)  # step_temperature of accepted steps
    checkpoint: Checkpoint | None = None  # state at the last accepted boundary (backtrack target)
    retries: int = 0  # resamplings of the step in progress
    previous_tau: tuple[torch.Tensor, torch.Tensor] | None = None  # (positions, tau) at the last step boundary
    final_reason: str | None = None  # set while the final probe of a stopping task runs
    answer: str | None = None
    stop_reason: str | None = None


def sequence_seed(seed: int, prompt: str) -> int:
    """Per-task seed from the run seed and the prompt text: independent of the task's position
    in the list, of its batch neighbours and of the process (no Python hash randomisation)."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def task_row(task: Task, tokenizer) -> dict:
    """The output-row fields a model run produces (the job layer adds id, prompt, reference...)."""
    seq = task.seq
    counters = seq.counters if seq is not None else Counters(prompt_tokens=task.prompt_tokens)
    steps = output_steps(tokenizer, seq.output_ids) if seq is not None else []
    latency = (seq.finished_at - seq.admitted_at) if seq is not None and seq.finished_at else 0.0
    return {
        "answer": task.answer,
        "steps": steps,
        "num_steps": len(steps),
        "prompt_tokens": counters.prompt_tokens,
        "generated_tokens": counters.generated_tokens,
        "probe_tokens": counters.probe_tokens,
        "attended_kv": counters.attended_kv,
        "step_temperature": list(task.heats),
        "stop_reason": "error" if task.error else task.stop_reason,
        "latency_s": latency,
        "error": task.error,
        "temperature_cache_hits": counters.temperature_cache_hits,
        "temperature_cache_misses": counters.temperature_cache_misses,
        "kv_evicted": counters.kv_evicted,
        "dropped_token_layers": counters.dropped_token_layers,
        "kv_total": seq.num_positions if seq is not None else 0,  # prompt + kept tokens ever cached
    }


def without_timing(row: dict) -> dict:
    """A row without its wall-clock field (`latency_s`): what is deterministic given the inputs,
    for comparing two runs."""
    return {k: v for k, v in row.items() if k != "latency_s"}
