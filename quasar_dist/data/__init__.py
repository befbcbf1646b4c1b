"""Reasoning-task data: generators (arith, logic), splits, answers, tokenizer.

Import from the submodules; this package re-exports the entry points most callers need.
"""
from quasar_dist.data.answers import answers_match, extract_answer, normalize_answer
from quasar_dist.data.splits import SPLITS, split_of
from quasar_dist.data.tasks import KINDS, make_tasks, read_tasks, training_text, write_tasks

__all__ = ["KINDS", "SPLITS", "answers_match", "extract_answer", "make_tasks", "normalize_answer",
           "read_tasks", "split_of", "training_text", "write_tasks"]
