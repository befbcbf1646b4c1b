"""Reasoning loops above the engine: GSoT (guided sequence of thought) and the CoT baseline.

The names below load on first use: `reasoning.config` is read by processes that never decode
(the job's driver, the stage actors), and the loops pull in the engine and torch."""
from __future__ import annotations

from quasar_dist.util.lazy_names import lazy_getattr

_HOMES = {"Reasoner": ".reasoner", "ReasoningConfig": ".config", "solve_prompts": ".solve"}

__getattr__ = lazy_getattr(__name__, _HOMES)


__all__ = sorted(_HOMES)
