"""One run at a time per output folder. Two runs resuming the same folder at once would both run
the tasks neither has written yet (duplicates), and one could delete the other's in-flight temp
files. An flock on OUTPUT/.lock prevents that; the kernel releases it when the holder exits,
even on SIGKILL, so a killed run never leaves the folder locked.

An output URI (s3://...) cannot be flocked: there the bucket and credentials are checked (one
line, nothing written) and one run per prefix at a time is the caller's to keep (a RayJob per
prefix, as for a scheduled day). docs/batch.md says so."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from quasar_dist.util.typed_config import ConfigError

from .store_access import store_info
from .uri import is_uri

LOCK_FILE = ".lock"


@contextmanager
def output_lock(output: str | Path) -> Iterator[None]:
    if is_uri(str(output)):
        _check_store_output(str(output))
        yield
        return
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output {output} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / LOCK_FILE, "a+")
    except OSError as exc:  # read-only or full file system, no permission: one line, not a traceback
        raise ConfigError(f"output {output} is not writable ({exc.strerror or type(exc).__name__})") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise ConfigError(f"{output} is in use by another quasar run (pid {holder}); wait for it or pick another --output") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_store_output(uri: str) -> None:
    import pyarrow.fs as pafs

    _, _, info = store_info(uri, "output")
    if info.type == pafs.FileType.File:
        raise ConfigError(f"output {uri} exists and is not a folder")
