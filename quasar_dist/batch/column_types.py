"""Which Arrow column types the job accepts, and how they become plain strings.

Text is text whatever its Arrow encoding: `string`, `large_string`, `string_view`, and a
dictionary of any of these (what pandas writes for a `category` column, and what many Spark and
Polars writers produce). A dictionary of integers is an integer column. Everything is cast to
plain `string` once, where the job reads it (prepare.py, the id scan); nothing downstream sees
another encoding.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def value_type(t: pa.DataType) -> pa.DataType:
    """The type of the values: a dictionary's value type, else the type itself."""
    return t.value_type if pa.types.is_dictionary(t) else t


def is_text(t: pa.DataType) -> bool:
    """A text column (all nulls count: an all-null prompt column is text with no values)."""
    t = value_type(t)
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t)
            or pa.types.is_null(t))


def is_id(t: pa.DataType) -> bool:
    return is_text(t) or pa.types.is_integer(value_type(t))


def is_scalar(t: pa.DataType) -> bool:
    """Answers and kinds: text, numbers or booleans (cast to text)."""
    v = value_type(t)
    return is_id(t) or pa.types.is_floating(v) or pa.types.is_boolean(v)


def to_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One plain `string` array; nulls stay null. Chunks are cast before they are combined, so
    dictionary chunks with different dictionaries (one per file or row group) combine too."""
    if column.type != pa.string():
        column = pc.cast(column, pa.string())
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _is_string_view(t: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(check and check(t))
