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
) -> list[Sequence]:
    """Token ids in, finished sequences out (same order); steps are committed on the way."""
    params = sampling if isinstance(sampling, list) else [sampling] * len(prompts)
    seqs = [Sequence(i, ids, p, max_new_tokens=max_new_tokens) for i, (ids, p) in enumerate(zip(prompts, params))]
    for seq in seqs:
        engine.add(seq)
    while engine.has_work():
        for seq in engine.step():
            if seq.event is Event.STOPPED:
                engine.release(seq)
    return seqs
