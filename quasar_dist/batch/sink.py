"""Where result blocks land on the driver: checked by the ledger, committed by the writer, counted
for the progress line and the run log."""
from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa

from .ledger import Ledger
from .progress import ProgressLine
from .results_store import ResultWriter


@dataclass(slots=True)
class StreamOutcome:
    computed: int = 0
    errors: int = 0
    dropped: int = 0
    missing: int = 0
    first_result_at: float | None = None


class ResultSink:
    def __init__(self, ledger: Ledger, writer: ResultWriter, progress: ProgressLine) -> None:
        self.ledger, self.writer, self.progress = ledger, writer, progress
        self.outcome = StreamOutcome()

    def take(self, batch: pa.Table) -> None:
        rows = self.ledger.admit(batch)
        self.writer.add(rows)
        num_errors = rows.num_rows - rows.column("error").null_count
        self.outcome.errors += num_errors
        self.outcome.first_result_at = self.outcome.first_result_at or time.time()
        tokens = sum(rows.column("generated_tokens").to_pylist())
        self.progress.update(tasks=rows.num_rows, errors=num_errors, generated_tokens=tokens)

    def close(self) -> StreamOutcome:
        """Commit what arrived (complete and checked rows are kept even when the stream failed)."""
        self.writer.flush()
        self.progress.close()
        out = self.outcome
        out.computed, out.dropped, out.missing = self.ledger.num_done, self.ledger.num_dropped, self.ledger.num_missing
        return out
