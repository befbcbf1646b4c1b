"""The typed config of `quasar_dist.build_processor`: what a user's own Ray Data pipeline sets
(model, mode, parallelism, batch size, GSoT settings), the `quasar run` fields minus the job's
(input, output, resume, flushes), with the same names and the same checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(kw_only=True, slots=True)
class ProcessorConfig:
    model: str = "tiny"
    """"tiny" (the shipped model) or a local Hugging Face model folder readable on every node."""
    ttm: str | None = None
    """A TTM adapter folder attached to `model` (null = the model's own temperatures)."""
    mode: Literal["gsot", "cot"] = "gsot"
    """Guided sequence of thought, or the chain-of-thought baseline (same engine, guidance off)."""
    tp: int = 1
    """Tensor-parallel ranks per replica (one Ray actor each, DeepSpeed AutoTP when > 1)."""
    replicas: int = 1
    """Model replicas = size of the actor pool (one ReplicaGang per pool actor)."""
    batch_size: int = 32
    """Tasks per call to a replica."""
    gsot: dict[str, Any] = field(default_factory=dict)
    """ReasoningConfig fields other than mode (max_steps, max_new_tokens, thresholds, seed...)."""
    parallel: dict[str, Any] = field(default_factory=dict)
    """ParallelConfig fields other than tp/replicas (placement_timeout_s, max_restarts, cpus_per_rank...)."""
    id_col: str = "id"
    """Column of task ids after preprocess (string or int); absent: derived from the prompt's hash."""
    prompt_col: str = "prompt"
    """Column of prompts after preprocess (required)."""
    answer_col: str = "answer"
    """Column of reference answers after preprocess (optional: without it `correct` is null)."""
    kind_col: str = "kind"
    """Column of task kinds (optional)."""

    def __post_init__(self) -> None:
        for name in ("tp", "replicas", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("model", "prompt_col"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        for reserved, source in (("mode", "gsot"), ("tp", "parallel"), ("replicas", "parallel")):
            if reserved in getattr(self, source):
                raise ValueError(f"set {reserved} at the top level, not under {source}")
