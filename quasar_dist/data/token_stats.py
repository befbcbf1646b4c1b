"""Token lengths of prompt + "\n" + solution per kind and step count.

Why: sequence length decides the model's context size and CPU training throughput; docs/data.md
quotes this table. Run `python -m quasar_dist.data.token_stats` to regenerate it.
"""
from __future__ import annotations

import statistics
from collections import defaultdict

from tokenizers import Tokenizer

from quasar_dist.data.tasks import make_tasks, training_text
from quasar_dist.data.tokenizer_build import build_tokenizer


def step_count(task: dict) -> int:
    """Number of solution lines before the '####' line."""
    return task["solution"].count("\n")


def token_lengths(tokenizer: Tokenizer, tasks: list[dict]) -> dict[tuple[str, int], list[int]]:
    """Token counts of each task's training text (no <bos>/<eos>), keyed by (kind, steps)."""
    lengths: dict[tuple[str, int], list[int]] = defaultdict(list)
    for task in tasks:
        lengths[(task["kind"], step_count(task))].append(len(tokenizer.encode(training_text(task)).ids))
    return dict(lengths)


def markdown_table(lengths: dict[tuple[str, int], list[int]]) -> str:
    """A markdown table: kind, steps, count, mean, p95, max."""
    rows = ["| kind | steps | n | mean | p95 | max |", "|---|---|---|---|---|---|"]
    for (kind, steps), values in sorted(lengths.items()):
        p95 = sorted(values)[int(0.95 * (len(values) - 1))]
        rows.append(f"| {kind} | {steps} | {len(values)} | {statistics.mean(values):.1f} | {p95} | {max(values)} |")
    return "\n".join(rows)


def main() -> None:
    train = make_tasks("arith", 2000, 0, "train") + make_tasks("logic", 2000, 0, "train")
    tokenizer = build_tokenizer(training_text(t) for t in train)
    test = make_tasks("arith", 400, 1, "test") + make_tasks("logic", 400, 1, "test")
    print(f"vocab entries used: {tokenizer.get_vocab_size()}")
    print(markdown_table(token_lengths(tokenizer, test)))


if __name__ == "__main__":
    main()
