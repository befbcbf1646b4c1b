"""Checking a URI's bucket and credentials before a run starts: a wrong bucket, missing or wrong
credentials, or an unreachable store is one line, and nothing has been written yet.

The message names the URI without its options and the store's own error class (e.g. "AWS Error
ACCESS_DENIED during HeadBucket"); neither holds a credential.
"""
from __future__ import annotations

import pyarrow.fs as pafs

from quasar_dist.util.errors import InputError, first_line

from .uri import CREDENTIAL_ADVICE, resolve, strip_query


def store_info(uri: str, what: str) -> tuple[pafs.FileSystem, str, pafs.FileInfo]:
    """(fs, path, info of path) once the bucket is known to exist and to answer us."""
    fs, path = resolve(uri)
    bucket = path.split("/", 1)[0]
    shown = strip_query(uri) if what == "input" else f"{what} {strip_query(uri)}"  # as local inputs are named
    try:
        if bucket and fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise InputError(f"{shown}: bucket {bucket!r} does not exist (or is not visible with these credentials)")
        info = fs.get_file_info(path)
    except OSError as exc:
        raise InputError(f"{shown}: the store refused access ({short_cause(exc)}); {CREDENTIAL_ADVICE}") from None
    return fs, path, info


def short_cause(exc: BaseException) -> str:
    """pyarrow's S3 errors start with 'When getting information for ...: AWS Error ...'; keep the error."""
    line = first_line(exc)
    return line.split(": ", 1)[1] if line.startswith("When ") and ": " in line else line
