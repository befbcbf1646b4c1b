"""Stage 1 (stateless, fused with the Parquet read): input columns -> the job's task columns
(id, prompt, reference, kind; all strings), keeping only the ids the plan says to run."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from .column_types import to_strings
from .ids import contains, derived_ids, id_hashes, ids_as_strings

TASK_SCHEMA = pa.schema([
    pa.field("id", pa.string()),
    pa.field("prompt", pa.string()),
    pa.field("reference", pa.string()),
    pa.field("kind", pa.string()),
])


def as_strings(batch: pa.Table, column: str | None) -> pa.Array:
    """A column as plain strings (answers may be ints, prompts dictionary-encoded); all nulls when the input has no such column."""
    if column is None:
        return pa.nulls(batch.num_rows, pa.string())
    return to_strings(batch.column(column))


def prepare_tasks(batch: pa.Table, *, prompt_col: str, id_col: str | None, answer_col: str | None,
                  kind_col: str | None, todo) -> pa.Table:
    """`todo`: the plan's sorted id hashes, or an ObjectRef to them (zero-copy from the object store)."""
    todo = ray.get(todo) if isinstance(todo, ray.ObjectRef) else todo
    prompts = as_strings(batch, prompt_col)
    ids = ids_as_strings(batch.column(id_col)) if id_col else derived_ids(prompts)
    keep = contains(np.asarray(todo), id_hashes(ids))
    table = pa.Table.from_arrays(
        [ids, prompts, as_strings(batch, answer_col), as_strings(batch, kind_col)], schema=TASK_SCHEMA
    )
    return table.filter(pa.array(keep))
