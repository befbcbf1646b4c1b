"""The small files of a run folder (config.yaml, runs.jsonl, report.json, report.md, plots/), in a
local folder or under a URI prefix.

Locally a file is written to a temp name and renamed over the old one; on an object store one
PUT of the whole object does the same (a reader sees the old object or the new one). An object
store has no append, so runs.jsonl is rewritten whole: a run folder has one writer at a time.
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs

from quasar_dist.util.errors import ResourceError, first_line

from .uri import is_uri, join, resolve, strip_query


def read_text(folder: str | Path, name: str) -> str | None:
    """The file's text, or None when it does not exist."""
    if is_uri(str(folder)):
        fs, base = resolve(str(folder))
        path = join(base, name)
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as fh:
            return fh.read().decode("utf-8")
    path = Path(folder) / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def write_text(folder: str | Path, name: str, text: str) -> None:
    """Replace the file whole (never seen half-written)."""
    write_bytes(folder, name, text.encode("utf-8"))


def write_bytes(folder: str | Path, name: str, data: bytes) -> None:
    if is_uri(str(folder)):
        fs, base = resolve(str(folder))
        try:
            with fs.open_output_stream(join(base, name)) as out:
                out.write(data)
        except OSError as exc:
            raise ResourceError(f"cannot write {strip_query(str(folder))}/{name} ({first_line(exc)})") from None
        return
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def upload_folder(local: Path, folder: str, name: str) -> None:
    """Copy every file of a local folder to `folder/name/` (plots made locally for a store)."""
    for file in sorted(local.iterdir()):
        if file.is_file():
            write_bytes(folder, f"{name}/{file.name}", file.read_bytes())
