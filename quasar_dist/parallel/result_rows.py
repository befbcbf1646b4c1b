"""Rows for prompts that could not be run: built by the reasoning layer's own `task_row`, so they
have exactly the fields of a normal row, with error=<cause> and stop_reason="error"; a failed
batch still yields one row per task."""
from __future__ import annotations


def error_rows(prompts: list[str], cause: str) -> list[dict]:
    from quasar_dist.reasoning.task import Task, task_row

    return [task_row(Task(i, None, error=cause), tokenizer=None) for i in range(len(prompts))]
