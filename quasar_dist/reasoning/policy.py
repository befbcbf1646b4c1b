"""What the reasoning loop does when the engine pauses a sequence. Shared by GSoT and CoT:
dispatch on the event, and finishing a task."""
from __future__ import annotations

from quasar_dist.engine import ANSWER_MARK, Engine, Event

from .config import ReasoningConfig
from .steps import output_answer
from .task import Task

# Engine stop -> task stop_reason. EOS ends the output as the model chose, like its "####" line.
STOP_REASONS = {"eos": "answer", "answer": "answer", "max_tokens": "max_tokens", "context": "max_tokens"}


class Policy:
    def __init__(self, engine: Engine, tokenizer, config: ReasoningConfig) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.config = config
        self.mark_ids = tokenizer.encode(ANSWER_MARK)

    def handle(self, task: Task) -> None:
        event = task.seq.event
        if event is Event.BOUNDARY:
            self.on_boundary(task)
        elif event is Event.PROBED:
            self.on_probe(task)
        else:
            self.on_stop(task)

    def on_boundary(self, task: Task) -> None:
        raise NotImplementedError

    def on_probe(self, task: Task) -> None:
        raise NotImplementedError

    def on_stop(self, task: Task) -> None:
        seq = task.seq
        self.finish(task, STOP_REASONS[seq.stop_reason], output_answer(self.tokenizer, seq.output_ids))

    def finish(self, task: Task, stop_reason: str, answer: str | None) -> None:
        task.stop_reason, task.answer = stop_reason, answer
        self.engine.release(task.seq)
