"""Exactly-once bookkeeping on the driver: every result row is checked against the plan before
it is written. A row whose id was not planned, or was already written in this run, is dropped
(counted, never written twice); planned ids that never came back are reported at the end.

One byte per planned task (`seen`), indexed like the plan's sorted hash array.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .ids import id_hashes


class Ledger:
    def __init__(self, todo: np.ndarray) -> None:
        self.todo = todo
        self.seen = np.zeros(len(todo), dtype=bool)
        self.num_dropped = 0
        self.num_done = 0

    def admit(self, table: pa.Table) -> pa.Table:
        """The rows of `table` to write: planned, and not yet written."""
        if table.num_rows == 0 or len(self.todo) == 0:
            self.num_dropped += table.num_rows
            return table.slice(0, 0)
        hashes = id_hashes(table.column("id").to_pylist())
        at = np.searchsorted(self.todo, hashes).clip(max=len(self.todo) - 1)
        fresh = np.flatnonzero((self.todo[at] == hashes) & ~self.seen[at])
        _, first = np.unique(at[fresh], return_index=True)  # one row per id within the batch too
        keep = np.zeros(table.num_rows, dtype=bool)
        keep[fresh[first]] = True
        self.seen[at[keep]] = True
        self.num_done += int(keep.sum())
        self.num_dropped += int(table.num_rows - keep.sum())
        return table.filter(pa.array(keep))

    @property
    def num_missing(self) -> int:
        return len(self.todo) - self.num_done
