"""Inference engine: request state -> scheduler -> runner -> model (each layer uses the next).

    Sequence   request state (sequence.py)
    Scheduler  CPU decisions: slots, continuous batching (scheduler.py)
    ModelRunner tensors: the one TemperatureKVCache and the model forwards (runner.py)
    Engine     `step()` plus boundary operations for the reasoning loop (engine.py)
"""
from .engine import Engine
from .flops import flops_for, params_per_token
from .generate import generate
from .sequence import Checkpoint, Counters, Event, ProbeResult, SamplingParams, Sequence, SequenceStatus
from .stopping import ANSWER_MARK, StopRule

__all__ = [
    "ANSWER_MARK", "Checkpoint", "Counters", "Engine", "Event", "ProbeResult", "SamplingParams",
    "Sequence", "SequenceStatus", "StopRule", "flops_for", "generate", "params_per_token",
]
