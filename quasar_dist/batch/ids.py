"""Task ids: normalised to strings, derived from the prompt when the input has none, and hashed
to 64 bits for the compact sets the job keeps (8 bytes per task instead of a Python string).

Without an id column the prompt text is the task's identity: the same prompt twice (or two
null prompts) is a duplicate id, reported as such.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from .column_types import to_strings

DERIVED_PREFIX = "p-"
NULL_PROMPT_KEY = "\x00null-prompt"  # cannot collide with a real prompt's text


def derive_id(prompt: str | None) -> str:
    text = NULL_PROMPT_KEY if prompt is None else prompt
    return DERIVED_PREFIX + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def ids_as_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Ids of any integer or text type (see column_types) as strings (1 -> "1"); nulls stay null."""
    return to_strings(column)


def derived_ids(prompts: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pa.array([derive_id(p) for p in prompts.to_pylist()], type=pa.string())


def id_hash(task_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(task_id.encode("utf-8"), digest_size=8).digest(), "little")


def id_hashes(ids: pa.Array | list[str]) -> np.ndarray:
    """uint64 hashes of string ids (None never reaches here: null ids are refused earlier)."""
    values = ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids
    return np.fromiter((id_hash(i) for i in values), dtype=np.uint64, count=len(values))


def contains(sorted_hashes: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Boolean mask: which of `hashes` are in the sorted array `sorted_hashes`."""
    if len(sorted_hashes) == 0:
        return np.zeros(len(hashes), dtype=bool)
    at = np.searchsorted(sorted_hashes, hashes).clip(max=len(sorted_hashes) - 1)
    return sorted_hashes[at] == hashes
