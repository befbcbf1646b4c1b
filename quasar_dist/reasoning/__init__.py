"""Reasoning loops above the engine: GSoT (guided sequence of thought) and the CoT baseline.

The names below load on first use: `reasoning.config` is read by processes that never decode
(the job's driver, the stage actors), and the loops pull in the engine and torch."""
from __future__ import annotations

import importlib

_HOMES = {"Reasoner": ".reasoner", "ReasoningConfig": ".config", "solve_prompts": ".solve"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # cached, and over a same-named submodule the import just bound
    return value


__all__ = sorted(_HOMES)
