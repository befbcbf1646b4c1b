"""Finding and checking the input Parquet files, on the driver, before anything heavy starts.

Only Parquet footers are read here (schemas, row counts): a missing path, a file that is not
Parquet, or a missing prompt column stops the run with a one-line InputError. The path may be a
URI (s3://bucket/prefix/, gs://, hdfs://; file:// is a local path): the same checks and the same
messages, through pyarrow's filesystem for it (store_inputs.py).
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from quasar_dist.util.errors import InputError

from .column_types import is_id, is_scalar, is_text
from .uri import is_uri, local_path

SHIPPED_TASKS = Path(__file__).resolve().parent.parent / "assets" / "sample_tasks.parquet"
GLOB_CHARS = "*?["


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What the stream reads: the files in order and which optional columns they have."""

    files: list[str]
    prompt_col: str
    id_col: str | None  # None: ids are derived from the prompt's hash
    answer_col: str | None
    kind_col: str | None
    file_rows: list[int]

    @property
    def num_rows(self) -> int:
        return sum(self.file_rows)

    def files_for(self, limit: int | None) -> list[str]:
        """The shortest prefix of the files that holds the first `limit` rows."""
        if limit is None:
            return list(self.files)
        files, rows = [], 0
        for f, n in zip(self.files, self.file_rows):
            if rows >= limit:
                break
            files.append(f)
            rows += n
        return files or self.files[:1]

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.id_col, self.prompt_col, self.answer_col, self.kind_col) if c]


def find_input_files(path: str | None) -> list[str]:
    """A file, every visible *.parquet under a folder, or the files a glob matches; sorted."""
    if path is None:
        return [str(SHIPPED_TASKS)]
    path = local_path(path)
    if is_uri(path):
        from .store_inputs import find_store_files

        return find_store_files(path, hidden=_hidden_name)
    if any(ch in path for ch in GLOB_CHARS):
        files = sorted(p for p in glob.glob(path, recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"{path}: no files match")
        return files
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet") if f.is_file() and not _hidden(f, p))
        if not files:
            raise InputError(f"{path}: folder holds no .parquet files")
        return files
    raise InputError(f"{path}: no such file or folder")


def _hidden(file: Path, root: Path) -> bool:
    return _hidden_name(file.relative_to(root).parts)


def _hidden_name(parts) -> bool:
    """Spark/Hadoop side files (_SUCCESS, .crc) and our own temp files start with '_' or '.'."""
    return any(part.startswith((".", "_")) for part in parts)


def open_parquet(file: str) -> pq.ParquetFile:
    """A task file by local path or URI (the files find_input_files returns)."""
    if is_uri(file):
        from .uri import resolve

        fs, path = resolve(file)
        return pq.ParquetFile(fs.open_input_file(path))
    return pq.ParquetFile(file)


def read_schema(file: str) -> tuple[pa.Schema, int]:
    try:
        meta = open_parquet(file).metadata if is_uri(file) else pq.read_metadata(file)
        return meta.schema.to_arrow_schema(), meta.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{file}: not a readable Parquet file ({first})") from None


def inspect_inputs(path: str | None, *, prompt_col: str, id_col: str, answer_col: str, kind_col: str) -> InputSpec:
    """Check every file's schema and return what the stream will read."""
    files = find_input_files(path)
    schemas = {f: read_schema(f) for f in files}
    for f, (schema, _) in schemas.items():
        if prompt_col not in schema.names:
            raise InputError(f"{f}: no prompt column {prompt_col!r} (columns: {', '.join(schema.names) or 'none'})")
        if not is_text(schema.field(prompt_col).type):
            raise InputError(f"{f}: prompt column {prompt_col!r} must hold strings, not {schema.field(prompt_col).type}")
    spec = InputSpec(
        files=files,
        prompt_col=prompt_col,
        id_col=_optional_column(schemas, id_col),
        answer_col=_optional_column(schemas, answer_col),
        kind_col=_optional_column(schemas, kind_col),
        file_rows=[schemas[f][1] for f in files],
    )
    for name, ok, wanted in ((spec.id_col, is_id, "strings or integers"),
                             (spec.answer_col, is_scalar, "strings, numbers or booleans"),
                             (spec.kind_col, is_scalar, "strings, numbers or booleans")):
        for f, (schema, _) in schemas.items() if name else ():
            if not ok(schema.field(name).type):  # would fail deep inside the stream otherwise
                raise InputError(f"{f}: column {name!r} must hold {wanted}, not {schema.field(name).type}")
    return spec


def _optional_column(schemas: dict[str, tuple[pa.Schema, int]], name: str) -> str | None:
    """The column if every file has it, None if none has it; files that disagree are an error."""
    having = [f for f, (schema, _) in schemas.items() if name in schema.names]
    if not having:
        return None
    if len(having) < len(schemas):
        lacking = next(f for f in schemas if f not in having)
        raise InputError(f"{lacking}: no {name!r} column, but {having[0]} has one (input files must agree)")
    return name
