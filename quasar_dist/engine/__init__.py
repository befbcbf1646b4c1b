"""Inference engine: request state -> scheduler -> runner -> model (each layer uses the next).

    Sequence   request state (sequence.py)
    Scheduler  CPU decisions: slots, continuous batching (scheduler.py)
    ModelRunner tensors: the one TemperatureKVCache and the model forwards (runner.py)
    Engine     `step()` plus boundary operations for the reasoning loop (engine.py)

The names below load on first use: the job's report counts FLOPs (flops.py) without torch.
"""
from __future__ import annotations

import importlib

_HOMES = {
    "ANSWER_MARK": ".stopping", "Checkpoint": ".sequence", "Counters": ".sequence", "Engine": ".engine",
    "Event": ".sequence", "ProbeResult": ".sequence", "SamplingParams": ".sequence", "Sequence": ".sequence",
    "SequenceStatus": ".sequence", "StopRule": ".stopping", "flops_for": ".flops", "generate": ".generate",
    "params_per_token": ".flops",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # cached, and over a same-named submodule the import just bound
    return value


__all__ = sorted(_HOMES)
