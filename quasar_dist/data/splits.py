"""Train/val/test assignment by a stable hash of the prompt text.

Why a hash and not "seed 0 is train, seed 1 is test": a split that depends only on the prompt
makes disjointness hold by construction. Any seed may be used for any split, and the same prompt
lands in the same split on every machine and Python version (sha256, not `hash()`).
"""
from __future__ import annotations

import hashlib

SPLITS = ("train", "val", "test")
# Cumulative percentage buckets: 0..89 train, 90..94 val, 95..99 test.
_BUCKET_ENDS = {"train": 90, "val": 95, "test": 100}


def split_of(prompt: str) -> str:
    """The split a prompt belongs to: 'train' (90%), 'val' (5%) or 'test' (5%)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for name in SPLITS:
        if bucket < _BUCKET_ENDS[name]:
            return name
    raise AssertionError("unreachable: bucket ends cover 0..99")


def check_split(split: str) -> str:
    """Return `split` unchanged or raise a one-line ValueError naming the known splits."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    return split
