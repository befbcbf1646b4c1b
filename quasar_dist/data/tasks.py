"""Task sets: balanced, deterministic, split-disjoint lists of problems, and their Parquet files.

`make_tasks(kind, n, seed, split)` draws candidates from `random.Random(seed)` and keeps those
whose prompt hashes into `split` (see splits.py) and is not already in the set. The i-th task's
difficulty is fixed by i (arith steps and logic hops cycle through 2..5, logic answers alternate
yes/no), so any n that is a multiple of 8 is exactly balanced, and the first n tasks of a seed
are the same whatever larger n is asked for.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from quasar_dist.data.arith import make_arith_problem
from quasar_dist.data.distractors import make_distracted
from quasar_dist.data.logic import make_logic_problem
from quasar_dist.data.splits import check_split, split_of

KINDS = ("arith", "logic", "mixed")
COLUMNS = ("id", "prompt", "answer", "solution", "kind")
MAX_DRAWS_PER_TASK = 20_000  # a split holds 5% of prompts: ~20 draws per test task on average


def training_text(task: dict) -> str:
    """The text the model is trained on: the question, a newline, the reference solution."""
    return task["prompt"] + "\n" + task["solution"]


def _candidate(kind: str, rng: random.Random, i: int, distractors: int | None) -> dict[str, str] | None:
    level = 2 + (i // 2) % 4 if kind == "logic" else 2 + i % 4
    if distractors is not None:
        return make_distracted(kind, rng, level, "yes" if i % 2 == 0 else "no", distractors)
    if kind == "arith":
        return make_arith_problem(rng, steps=level, distractors=rng.random() < 0.5)
    return make_logic_problem(rng, hops=level, answer="yes" if i % 2 == 0 else "no")


def make_tasks(kind: str, n: int, seed: int, split: str = "test", distractors: int | None = None) -> list[dict]:
    """`n` distinct tasks of `kind` ('arith', 'logic' or 'mixed') from `split`, reproducible by seed.

    'mixed' interleaves make_tasks('arith', ceil(n/2), seed) and make_tasks('logic', n//2, seed).
    distractors None: today's tasks. A number: exactly that many irrelevant sentences per prompt,
    and a `relevant_spans` field (distractors.py); the split then hashes the core problem.
    """
    if distractors is not None and distractors < 0:
        raise ValueError(f"distractors must be >= 0, got {distractors}")
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r} (known: {', '.join(KINDS)})")
    check_split(split)
    if n < 0:
        raise ValueError(f"number of tasks must be >= 0, got {n}")
    if kind == "mixed":
        arith = make_tasks("arith", (n + 1) // 2, seed, split, distractors)
        logic = make_tasks("logic", n // 2, seed, split, distractors)
        mixed = [t for pair in zip(arith, logic) for t in pair]
        return mixed + arith[len(logic):]
    rng = random.Random(seed)
    seen: set[str] = set()
    tasks = []
    for i in range(n):
        for _ in range(MAX_DRAWS_PER_TASK):
            problem = _candidate(kind, rng, i, distractors)
            key = problem and problem.pop("core", problem["prompt"])  # what the split and uniqueness hash
            if problem and key not in seen and split_of(key) == split:
                break
        else:
            raise RuntimeError(f"could not draw task {i} of {kind}/{split} in {MAX_DRAWS_PER_TASK} tries")
        seen.add(key)
        tasks.append({"id": f"{kind}-{split}-{i:06d}", **problem, "kind": kind})
    return tasks


SPAN_TYPE = pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32())]))


def write_tasks(rows: Iterable[dict], path: str | Path) -> Path:
    """Write tasks as Parquet (pyarrow) with string columns id, prompt, answer, solution, kind,
    and `relevant_spans` (list<struct<start: int32, end: int32>>) when the tasks have them."""
    rows = list(rows)
    columns = {c: pa.array([str(r[c]) for r in rows], type=pa.string()) for c in COLUMNS}
    if rows and "relevant_spans" in rows[0]:
        columns["relevant_spans"] = pa.array([r["relevant_spans"] for r in rows], type=SPAN_TYPE)
    table = pa.table(columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_tasks(path: str | Path) -> list[dict]:
    """Read a Parquet task file written by write_tasks back into a list of dicts."""
    return pq.read_table(path, columns=list(COLUMNS)).to_pylist()
