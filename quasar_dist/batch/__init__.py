"""The batch job layer: Parquet tasks streamed through GSoT on a pool of model replicas (Ray Data),
resumable, with exactly-once results and a throughput report. See docs/batch.md.

The names below load on first use: Ray Data's read tasks import `batch.prepare` (through this
package), and the stage and the job pull in the model layer and torch, which they do not need."""
from __future__ import annotations

import importlib

_HOMES = {"OUTPUT_SCHEMA": ".schema", "ReasonStage": ".stage", "RunConfig": ".config", "run_batch": ".job",
          "run_from_cli": ".job"}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # cached, and over a same-named submodule the import just bound
    return value


__all__ = sorted(_HOMES)
