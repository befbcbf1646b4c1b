"""The run's plan, made on the driver from the id column alone (streamed, one row group at a time):
which tasks exist (after --limit), that their ids are unique, and which still need running.

The plan is a sorted uint64 array of id hashes (8 bytes per task): the one structure that grows
with the dataset. The stream filters on it and the writer checks every result against it, so a
task is run and written at most once, and a task missing at the end is noticed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa

from quasar_dist.util.errors import InputError, first_line

from .ids import derived_ids, id_hashes, ids_as_strings
from .inputs import InputSpec, open_parquet

SCAN_ROWS = 65_536
SHOWN_DUPLICATES = 3


@dataclass(frozen=True, slots=True)
class TaskPlan:
    todo: np.ndarray
    """Sorted uint64 hashes of the ids to run now."""
    num_tasks: int
    """Input tasks in scope (after --limit)."""
    num_skipped: int
    """Tasks in scope already in the results (resume)."""


def scan_task_ids(spec: InputSpec, limit: int | None) -> np.ndarray:
    """Hashes of the first `limit` ids; InputError on null or duplicate ids."""
    hashes = np.concatenate([h for _, h in _scan(spec, limit)] or [np.empty(0, np.uint64)])
    _check_unique(hashes, spec, limit)
    return hashes


def plan_tasks(hashes: np.ndarray, done: np.ndarray) -> TaskPlan:
    """`hashes`: from scan_task_ids; `done`: hashes of the ids already in the results."""
    todo = np.setdiff1d(hashes, done)  # sorted and unique (assume_unique=True would keep input order)
    return TaskPlan(todo=todo, num_tasks=len(hashes), num_skipped=len(hashes) - len(todo))


def _scan(spec: InputSpec, limit: int | None) -> Iterator[tuple[pa.Array, np.ndarray]]:
    """(ids, their hashes) in file order, at most `limit` rows."""
    left = spec.num_rows if limit is None else limit
    column = spec.id_col or spec.prompt_col
    for file in spec.files:
        for batch in _batches(file, column):
            if left <= 0:
                return
            values = batch.column(0)[:left]
            try:
                ids = ids_as_strings(values) if spec.id_col else derived_ids(values)
            except (pa.ArrowException, UnicodeDecodeError) as exc:  # e.g. non-UTF-8 bytes
                raise InputError(f"{file}: id column {column!r} cannot be read as text ({first_line(exc)})") from None
            if ids.null_count:
                raise InputError(f"{file}: {ids.null_count} null value(s) in id column {column!r}")
            left -= len(ids)
            yield ids, id_hashes(ids)


def _batches(file: str, column: str) -> Iterator[pa.RecordBatch]:
    """The column's record batches; a corrupt data page (footer intact) is a one-line InputError."""
    batches = open_parquet(file).iter_batches(columns=[column], batch_size=SCAN_ROWS)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{file}: corrupt Parquet data in column {column!r} ({first_line(exc)})") from None
        yield batch


def _check_unique(hashes: np.ndarray, spec: InputSpec, limit: int | None) -> None:
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated) == 0:
        return
    names = _ids_with_hashes(spec, limit, repeated[:SHOWN_DUPLICATES])
    shown = ", ".join(repr(n) for n in names)
    more = f" ({len(repeated)} ids repeat in all)" if len(repeated) > len(names) else ""
    why = "" if spec.id_col else " (the input has no id column: ids are prompt hashes, so these prompts repeat)"
    raise InputError(f"duplicate task ids: {shown}{more}{why}")


def _ids_with_hashes(spec: InputSpec, limit: int | None, wanted: np.ndarray) -> list[str]:
    """Second pass, only on error: the id strings behind a few duplicated hashes."""
    found: dict[int, str] = {}
    for ids, hashes in _scan(spec, limit):
        for i in np.flatnonzero(np.isin(hashes, wanted)):
            found.setdefault(int(hashes[i]), ids[int(i)].as_py())
        if len(found) == len(wanted):
            break
    return [found[int(h)] for h in wanted if int(h) in found]
