"""The batch job layer: Parquet tasks streamed through GSoT on a pool of model replicas (Ray Data),
resumable, with exactly-once results and a throughput report. See docs/batch.md."""
from .config import RunConfig
from .schema import OUTPUT_SCHEMA
from .stage import ReasonStage

__all__ = ["OUTPUT_SCHEMA", "ReasonStage", "RunConfig", "run_batch", "run_from_cli"]


def __getattr__(name):  # the job pulls in the report and Ray Data; import it when asked for
    if name in ("run_batch", "run_from_cli"):
        from . import job

        return getattr(job, name)
    raise AttributeError(name)
