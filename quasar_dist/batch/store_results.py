"""OUTPUT/results/ on an object store (s3://, gs://, hdfs://): exactly-once without rename.

An object store has no atomic rename, and some (HDFS) show a file while it is being written. So a
flush writes its rows once, under a name no other flush uses (`part-<run>-<n>.parquet`), and only
then a small commit record `results/_committed/part-<run>-<n>.parquet.json`. Readers take the
parts that have a record and nothing else; the next run deletes parts without one (a run killed
mid-write, or between the two writes), so their tasks are simply run again. A record is written
only after its part is closed, so a record never points at a partial file.
"""
from __future__ import annotations

import json
import time

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from quasar_dist.util.errors import InputError, ResourceError, first_line

from .uri import join, resolve, strip_query

RESULTS = "results"
COMMITTED = "_committed"
RECORD_SUFFIX = ".json"


class StoreResults:
    """The results/ folder of a run folder given as a URI."""

    def __init__(self, output: str) -> None:
        self.uri = strip_query(output)
        self.fs, base = resolve(output)
        self.folder = join(base, RESULTS)
        self.records = join(self.folder, COMMITTED)

    def _names(self, folder: str, suffix: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(suffix))

    def committed(self) -> list[str]:
        """Names of the committed parts (sorted): those with a record and a file."""
        parts = set(self._names(self.folder, ".parquet"))
        recorded = [n[: -len(RECORD_SUFFIX)] for n in self._names(self.records, RECORD_SUFFIX)]
        return [n for n in recorded if n in parts]

    def paths(self) -> list[str]:
        return [join(self.folder, n) for n in self.committed()]

    def clean_uncommitted(self) -> int:
        """Delete the parts a killed run left without a record; returns how many."""
        recorded = set(self.committed())
        orphans = [n for n in self._names(self.folder, ".parquet") if n not in recorded]
        for name in orphans:
            self.fs.delete_file(join(self.folder, name))
        return len(orphans)

    def clear(self) -> int:
        """--no-resume: records first (the parts stop counting at once), then the parts."""
        committed = self.committed()
        for name in self._names(self.records, RECORD_SUFFIX):
            self.fs.delete_file(join(self.records, name))
        self.clean_uncommitted()
        return len(committed)

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return self._read(name, lambda path: pq.read_table(path, columns=columns, filesystem=self.fs))

    def column_names(self, name: str) -> set[str]:
        """The columns of part `name` (its footer only)."""
        return set(self._read(name, lambda path: pq.read_schema(path, filesystem=self.fs)).names)

    def _read(self, name: str, read):
        try:
            return read(join(self.folder, name))
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            raise InputError(f"{self.uri}/{RESULTS}/{name}: unreadable results file ({first_line(exc)}); "
                             "delete it and its commit record to recompute its tasks") from None

    def write_part(self, table: pa.Table, name: str, run_id: str) -> None:
        """The part, closed, then its record: whole and counted, or not counted at all."""
        try:
            pq.write_table(table, join(self.folder, name), filesystem=self.fs)
            record = json.dumps({"part": name, "rows": table.num_rows, "run_id": run_id, "at": time.time()})
            with self.fs.open_output_stream(join(self.records, name + RECORD_SUFFIX)) as out:
                out.write(record.encode())
        except OSError as exc:
            raise ResourceError(f"cannot write results to {self.uri}/{RESULTS} ({first_line(exc)}); "
                                "fix access to the store, then run the same command again to resume") from None
