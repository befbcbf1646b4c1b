"""OUTPUT/results/: result files that are either whole or absent.

In a local folder, each flush writes `.part-<run>-<n>.parquet.tmp` and renames it to `part-<run>-<n>.parquet`
(rename is atomic on POSIX filesystems), so a run killed at any instant leaves only complete
files plus, at worst, one hidden temp file, which the next run deletes. Every path is built
here from the output folder and names this module makes: nothing is written outside results/.
An output given as a URI (s3://...) has no atomic rename: there, parts and their commit records
are store_results.py's, and every function below hands over to it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from quasar_dist.util.errors import InputError, ResourceError, first_line

from .ids import id_hashes
from .store_results import StoreResults
from .uri import is_uri

RESULTS = "results"
PART_GLOB = "part-*.parquet"
TEMP_GLOB = ".part-*.parquet.tmp"


def results_dir(output: str | Path) -> Path:
    return Path(output) / RESULTS


def result_files(output: str | Path) -> list[Path] | list[str]:
    """The committed result files (local paths, or paths inside the store for a URI)."""
    if is_uri(str(output)):
        return StoreResults(str(output)).paths()
    return sorted(results_dir(output).glob(PART_GLOB))


def clean_temp_files(output: str | Path) -> int:
    """Delete the half-written files of a killed run; returns how many there were."""
    if is_uri(str(output)):
        return StoreResults(str(output)).clean_uncommitted()
    temps = list(results_dir(output).glob(TEMP_GLOB))
    for temp in temps:
        temp.unlink(missing_ok=True)
    return len(temps)


def clear_results(output: str | Path) -> int:
    """--no-resume: drop the earlier results (only the files this module writes)."""
    if is_uri(str(output)):
        return StoreResults(str(output)).clear()
    files = result_files(output)
    for f in files:
        f.unlink()
    clean_temp_files(output)
    return len(files)


def read_done_hashes(output: str | Path) -> np.ndarray:
    """Sorted unique hashes of the ids already in the results (only their id column is read)."""
    parts = [np.empty(0, np.uint64)]
    if is_uri(str(output)):
        store = StoreResults(str(output))
        for name in store.committed():
            parts.append(id_hashes(store.read_table(name, columns=["id"]).column("id").to_pylist()))
        return np.unique(np.concatenate(parts))
    for f in result_files(output):
        try:
            ids = pq.read_table(f, columns=["id"]).column("id")
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            raise InputError(f"{f}: unreadable results file ({type(exc).__name__}); delete it to recompute its tasks") from None
        parts.append(id_hashes(ids.to_pylist()))
    return np.unique(np.concatenate(parts))


def write_atomically(table: pa.Table, final: Path) -> None:
    """A full disk or a read-only folder is a one-line ResourceError; the temp file is removed
    (if it cannot be, the next run deletes it: it is never taken as done)."""
    temp = final.with_name(f".{final.name}.tmp")
    try:
        pq.write_table(table, temp)
        with open(temp, "rb") as fh:  # the data must be on disk before the name says it is complete
            os.fsync(fh.fileno())
        os.replace(temp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass
        why = exc.strerror or first_line(exc)
        raise ResourceError(f"cannot write results to {final.parent} ({why}); "
                            "free space or fix permissions, then run the same command again to resume") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResultWriter:
    """Buffers result tables and commits them as one new file every `flush_rows` rows or
    `flush_interval_s` seconds: the most a killed run loses, and few files for large runs."""

    def __init__(self, output: str | Path, run_id: str, *, flush_rows: int, flush_interval_s: float) -> None:
        self.store = StoreResults(str(output)) if is_uri(str(output)) else None
        self.folder = results_dir(output)
        if self.store is None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self.flush_rows, self.flush_interval_s = flush_rows, flush_interval_s
        self.pending: list[pa.Table] = []
        self.num_pending = 0
        self.num_files = 0
        self.last_flush = time.monotonic()

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table)
            self.num_pending += table.num_rows
        overdue = time.monotonic() - self.last_flush >= self.flush_interval_s
        if self.num_pending >= self.flush_rows or (overdue and self.num_pending):
            self.flush()

    def flush(self) -> None:
        if self.num_pending:
            name = f"part-{self.run_id}-{self.num_files:05d}.parquet"
            if self.store is not None:
                self.store.write_part(pa.concat_tables(self.pending), name, self.run_id)
            else:
                write_atomically(pa.concat_tables(self.pending), self.folder / name)
            self.num_files += 1
        self.pending, self.num_pending = [], 0
        self.last_flush = time.monotonic()
