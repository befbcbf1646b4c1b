"""Plain batched generation (no reasoning loop): run every prompt to a stop, with continuous
batching. Used by tests and benchmarks; the reasoning loop drives the engine itself."""
from __future__ import annotations

from .engine import Engine
from .sequence import Event, SamplingParams, Sequence


def generate(
    engine: Engine,
    prompts: list[list[int]],
    sampling: SamplingParams | list[SamplingParams] = SamplingParams(),
    *,
    max_new_tokens: int,
    commit_steps: bool | None = None,
) -> list[Sequence]:
    """Token ids in, finished sequences out (same order). Steps are committed on the way unless
    commit_steps is False (default: when the model's guidance reads temperatures)."""
    params = sampling if isinstance(sampling, list) else [sampling] * len(prompts)
    commit = engine.runner.model.guidance != "off" if commit_steps is None else commit_steps
    seqs = [Sequence(i, ids, p, max_new_tokens=max_new_tokens, commit_steps=commit)
            for i, (ids, p) in enumerate(zip(prompts, params))]
    for seq in seqs:
        engine.add(seq)
    while engine.has_work():
        for seq in engine.step():
            if seq.event is Event.STOPPED:
                engine.release(seq)
    return seqs
