"""The batch job's run config: one typed dataclass, filled from YAML (configs/runs/*.yaml) and
overridden by `quasar run` flags. The resolved config is saved as `OUTPUT/config.yaml`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_OUTPUT = "outputs/run"


@dataclass(kw_only=True, slots=True)
class RunConfig:
    input: str | None = None
    """Parquet file, folder (every *.parquet below it) or glob of tasks; null = the shipped sample tasks."""
    output: str = DEFAULT_OUTPUT
    """Run folder: results/*.parquet, report.json, report.md, plots/, config.yaml. Re-running on it resumes."""
    model: str = "tiny"
    """"tiny" (the shipped model) or a local Hugging Face model folder readable on every node."""
    ttm: str | None = None
    """A TTM adapter folder (`quasar train` with adapter_of) attached to `model` in place of its own
    temperatures; readable on every node. null = the model's own."""
    mode: Literal["gsot", "cot"] = "gsot"
    """Guided sequence of thought, or the chain-of-thought baseline (same engine, guidance off)."""
    tp: int = 1
    """Tensor-parallel ranks per replica (one Ray actor each, DeepSpeed AutoTP when > 1)."""
    replicas: int = 1
    """Model replicas = size of the Ray Data actor pool (one ReplicaGang per pool actor)."""
    batch_size: int = 1024
    """Tasks per batch sent to a replica (the engine batches them continuously, gsot.max_batch_size at a
    time). Several times the slot count, so the tail of a batch, when slots empty, is a small part of it."""
    limit: int | None = None
    """Process at most the first N input tasks (in file order); null = all."""
    resume: bool = True
    """Skip ids already in OUTPUT/results. False deletes the earlier results of OUTPUT first."""
    id_col: str = "id"
    """Column of task ids (string or int); when absent, ids are derived from a hash of the prompt."""
    prompt_col: str = "prompt"
    """Column of prompts (string, required)."""
    answer_col: str = "answer"
    """Column of reference answers (optional: without it `correct` is null)."""
    kind_col: str = "kind"
    """Column of task kinds (optional: carried to the output, used for accuracy by kind)."""
    address: str | None = None
    """Ray cluster to join ("auto", "ray://host:10001"...); null = $RAY_ADDRESS if set, else a local instance started for the run."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance started for the run; null = max(cores, what the replicas reserve + 1)."""
    gsot: dict[str, Any] = field(default_factory=dict)
    """Reasoning settings (ReasoningConfig fields other than mode: max_steps, max_new_tokens, thresholds, seed...)."""
    parallel: dict[str, Any] = field(default_factory=dict)
    """Replica settings (ParallelConfig fields other than tp/replicas: placement_timeout_s, max_restarts, cpus_per_rank...)."""
    flush_rows: int = 1024
    """Results are committed (atomically, one new file) every this many rows..."""
    flush_interval_s: float = 30.0
    """...or this many seconds, whichever comes first: the most work a killed run loses."""
    progress_interval_s: float = 1.0
    """Seconds between progress lines (stderr); 0 = no progress line."""
    plots: bool = True
    """Write plots/*.png with the report."""
    verbose: bool = False
    """Show Ray's own output too: workers' stdout/stderr, Ray Data's progress bars and log lines."""

    def __post_init__(self) -> None:
        for name in ("tp", "replicas", "batch_size", "flush_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {self.num_cpus}")
        for name in ("flush_interval_s", "progress_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("id_col", "prompt_col", "answer_col", "kind_col", "output", "model"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        for reserved, source in (("mode", "gsot"), ("tp", "parallel"), ("replicas", "parallel")):
            if reserved in getattr(self, source):
                raise ValueError(f"set {reserved} at the top level, not under {source}")
