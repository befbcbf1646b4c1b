"""Inference engine: request state -> scheduler -> runner -> model (each layer uses the next).

    Sequence   request state (sequence.py)
    Scheduler  CPU decisions: slots, continuous batching (scheduler.py)
    ModelRunner tensors: the one TemperatureKVCache and the model forwards (runner.py)
    Engine     `step()` plus boundary operations for the reasoning loop (engine.py)

The names below load on first use: the job's report counts FLOPs (flops.py) without torch.
"""
from __future__ import annotations

from quasar_dist.util.lazy_names import lazy_getattr

_HOMES = {
    "ANSWER_MARK": ".stopping", "Checkpoint": ".sequence", "Counters": ".sequence", "Engine": ".engine",
    "Event": ".sequence", "ProbeResult": ".sequence", "SamplingParams": ".sequence", "Sequence": ".sequence",
    "SequenceStatus": ".sequence", "StopRule": ".stopping", "flops_for": ".flops", "generate": ".generate",
    "params_per_token": ".flops",
}

__getattr__ = lazy_getattr(__name__, _HOMES)


__all__ = sorted(_HOMES)
