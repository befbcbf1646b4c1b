"""The CoT baseline: the same engine, no decisions at boundaries (no eviction, no probe, no
backtracking); stop at the model's "####" line, EOS, max_steps or max_new_tokens."""
from __future__ import annotations

from .policy import Policy
from .steps import output_answer
from .task import Task


class CotPolicy(Policy):
    def on_boundary(self, task: Task) -> None:
        seq = task.seq
        if seq.num_steps >= self.config.max_steps:
            self.finish(task, "max_steps", output_answer(self.tokenizer, seq.output_ids))
        else:
            self.engine.resume(seq)

    def on_probe(self, task: Task) -> None:
        raise RuntimeError("CoT never probes")
