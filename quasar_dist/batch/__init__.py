"""The batch job layer: Parquet tasks streamed through GSoT on a pool of model replicas (Ray Data),
resumable, with exactly-once results and a throughput report. See docs/batch.md.

The names below load on first use: Ray Data's read tasks import `batch.prepare` (through this
package), and the stage and the job pull in the model layer and torch, which they do not need."""
from __future__ import annotations

from quasar_dist.util.lazy_names import lazy_getattr

_HOMES = {"OUTPUT_SCHEMA": ".schema", "ReasonStage": ".stage", "RunConfig": ".config", "run_batch": ".job",
          "run_from_cli": ".job"}

__getattr__ = lazy_getattr(__name__, _HOMES)


__all__ = sorted(_HOMES)
