"""Hop-by-hop check of a model's logic chains on held-out tasks: is the first lookup right, is
the whole chain the reference one, is the answer right (docs/training.md).

    python benchmarks/logic_chain_check.py [MODEL] [--n 80]
"""
from __future__ import annotations

import argparse
from collections import Counter

from quasar_dist import Reasoner
from quasar_dist.data.answers import answers_match
from quasar_dist.data.tasks import make_tasks
from quasar_dist.train.heldout import HELDOUT_SEED


def chain_counts(model: str, n: int) -> Counter:
    tasks = make_tasks("logic", n, HELDOUT_SEED, "test")
    rows = Reasoner(model, guidance="off", mode="cot").solve([t["prompt"] for t in tasks])
    counts = Counter()
    for task, row in zip(tasks, rows):
        reference = task["solution"].split("\n")[:-1]
        chain_ok = row["steps"][: len(reference)] == reference
        counts["first_lookup_right"] += bool(row["steps"]) and row["steps"][0] == reference[0]
        counts["whole_chain_right"] += chain_ok
        counts["answer_right"] += answers_match(row["answer"], task["answer"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="tiny")
    parser.add_argument("--n", type=int, default=80)
    args = parser.parse_args()
    print(dict(chain_counts(args.model, args.n)), "of", args.n)


if __name__ == "__main__":
    main()
