"""Finding task files under a URI (s3://bucket/prefix/, a single object, or a glob in the last
parts), with the same rules and messages as for a local folder: sorted, every visible *.parquet
below a prefix, hidden side files (_SUCCESS, .crc, our _committed/) left out.
"""
from __future__ import annotations

import fnmatch
from typing import Callable

import pyarrow.fs as pafs

from quasar_dist.util.errors import InputError

from .store_access import store_info
from .uri import strip_query

GLOB_CHARS = "*?["


def find_store_files(uri: str, *, hidden: Callable) -> list[str]:
    """The files as URIs; options of the URI (?endpoint_override=...) stay on each of them."""
    scheme, rest = strip_query(uri).split("://", 1)
    options = uri[len(strip_query(uri)):]
    return [f + options for f in _find(uri, f"{scheme}://", rest, hidden)]


def _find(uri: str, prefix: str, rest: str, hidden: Callable) -> list[str]:
    if any(ch in rest for ch in GLOB_CHARS):
        return _glob(uri, prefix, hidden)
    fs, path, info = store_info(uri, "input")
    if info.type == pafs.FileType.File:
        return [strip_query(uri)]
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"{uri}: no such file or folder")
    files = _visible_parquet(fs, path, hidden)
    if not files:
        raise InputError(f"{uri}: folder holds no .parquet files")
    return [prefix + f for f in files]


def _visible_parquet(fs: pafs.FileSystem, root: str, hidden: Callable) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                  and not hidden(i.path[len(root):].strip("/").split("/")))


def _glob(uri: str, prefix: str, hidden: Callable) -> list[str]:
    """`s3://b/day=*/part-*.parquet`: list below the static part of the pattern, then match."""
    pattern = strip_query(uri)[len(prefix):]
    static = pattern[: min(pattern.index(c) for c in GLOB_CHARS if c in pattern)].rsplit("/", 1)[0]
    fs, root, info = store_info(prefix + static + uri[len(strip_query(uri)):], "input")
    if info.type != pafs.FileType.Directory:
        raise InputError(f"{uri}: no files match")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files = sorted(i.path for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, pattern))
    if not files:
        raise InputError(f"{uri}: no files match")
    return [prefix + f for f in files]
