"""Reading a run folder's results for the report: only the columns the report uses (not prompts
nor step texts), from every committed results/part-*.parquet."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from quasar_dist.util.errors import InputError

REPORT_COLUMNS = [
    "correct", "num_steps", "prompt_tokens", "generated_tokens", "probe_tokens", "attended_kv",
    "step_temperature", "stop_reason", "latency_s", "error", "mode", "model", "kind",
    "temperature_cache_hits", "temperature_cache_misses", "kv_evicted", "kv_total", "dropped_token_layers",
    "run_id", "finished_at",
]
ADDED_LATER = {"dropped_token_layers": 0}  # columns a folder written before them lacks: their value then


def read_results(run_dir: str | Path) -> pa.Table:
    """All committed result rows (report columns only); an empty table when there are none yet."""
    from quasar_dist.batch.uri import is_uri

    if is_uri(str(run_dir)):
        return _read_store_results(str(run_dir))
    folder = Path(run_dir)
    if not folder.is_dir():
        raise InputError(f"{run_dir}: no such run folder")
    files = sorted((folder / "results").glob("part-*.parquet"))
    if not files:
        from quasar_dist.batch.schema import OUTPUT_SCHEMA

        return OUTPUT_SCHEMA.empty_table().select(REPORT_COLUMNS)
    try:
        tables = [_report_part(set(pq.read_schema(f).names), lambda cols, f=f: pq.read_table(f, columns=cols)) for f in files]
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{folder / 'results'}: unreadable results ({first})") from None
    return pa.concat_tables(tables)


def _report_part(names: set[str], read) -> pa.Table:
    """One part's report columns, `read(columns)` given only those the part has (`names`): a
    column in ADDED_LATER that an older part lacks is filled in with its value then."""
    from quasar_dist.batch.schema import OUTPUT_SCHEMA

    table = read([c for c in REPORT_COLUMNS if c in names or c not in ADDED_LATER])
    for name, value in ADDED_LATER.items():
        if name not in names:
            field = OUTPUT_SCHEMA.field(name)
            table = table.add_column(REPORT_COLUMNS.index(name), field, pa.array([value] * table.num_rows, field.type))
    return table


def _read_store_results(uri: str) -> pa.Table:
    """The committed parts under a URI (store_results.py: parts with a commit record)."""
    from quasar_dist.batch.schema import OUTPUT_SCHEMA
    from quasar_dist.batch.store_results import StoreResults

    store = StoreResults(uri)
    tables = [_report_part(store.column_names(name), lambda cols, name=name: store.read_table(name, columns=cols))
              for name in store.committed()]
    return pa.concat_tables(tables) if tables else OUTPUT_SCHEMA.empty_table().select(REPORT_COLUMNS)
