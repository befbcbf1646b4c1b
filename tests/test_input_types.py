"""Text is text whatever its Arrow encoding (issue #12): `string`, `large_string`, `string_view`
and dictionaries of them (pandas `category`, many Spark/Polars writers) are accepted wherever a
string column is, for prompts, ids, answers and kinds; a dictionary of integers is an id column.

Fast checks per type without Ray (footer check, id scan, the stage that turns columns into task
strings), then one `quasar run` over a folder that mixes every encoding, written by pyarrow,
pandas and fastparquet, which must come back as one row per task.
"""
from __future__ import annotations

import json
from pathlib import Path

import fastparquet
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml

from quasar_dist.batch.column_types import is_text
from quasar_dist.batch.inputs import inspect_inputs
from quasar_dist.batch.prepare import prepare_tasks
from quasar_dist.batch.task_plan import scan_task_ids
from quasar_dist.data.tasks import make_tasks

from test_bad_input import GSOT, quasar_run

TASKS = make_tasks("arith", 6, 21, split="test")
COLUMNS = dict(prompt_col="prompt", id_col="id", answer_col="answer", kind_col="kind")


def _encoded(values: list, how: str) -> pa.Array:
    plain = pa.array(values)
    if how == "dictionary":
        return plain.dictionary_encode()
    if how == "large_string":
        return plain.cast(pa.large_string())
    if how == "string_view":
        return plain.cast(pa.string_view())
    return plain


def _write_pyarrow(path: Path, how: str, tasks=TASKS, prefix: str = "") -> None:
    columns = {"id": [prefix + str(i) for i in range(len(tasks))], "prompt": [t["prompt"] for t in tasks],
               "answer": [t["answer"] for t in tasks], "kind": [t["kind"] for t in tasks]}
    pq.write_table(pa.table({name: _encoded(values, how) for name, values in columns.items()}), path)


def _frame(tasks, prefix: str) -> pd.DataFrame:
    frame = pd.DataFrame({"id": [prefix + str(i) for i in range(len(tasks))], "prompt": [t["prompt"] for t in tasks],
                          "answer": [t["answer"] for t in tasks], "kind": [t["kind"] for t in tasks]})
    return frame.astype("category")  # every column categorical, as a user's pandas pipeline writes it


def _write_frame(frame: pd.DataFrame, path: Path, engine: str) -> None:
    if engine == "fastparquet":  # fastparquet's own writer (pandas' route to it is deprecated)
        fastparquet.write(str(path), frame, write_index=False)
    else:
        frame.to_parquet(path, engine="pyarrow", index=False)


ENCODINGS = ["dictionary", "large_string", "string_view"]


@pytest.mark.parametrize("how", ENCODINGS)
def test_each_text_encoding_is_accepted_and_read_as_plain_strings(tmp_path, how):
    path = tmp_path / "t.parquet"
    _write_pyarrow(path, how)
    spec = inspect_inputs(str(path), **COLUMNS)
    assert spec.id_col == "id" and spec.answer_col == "answer" and spec.kind_col == "kind"
    assert len(scan_task_ids(spec, None)) == len(TASKS)
    table = pq.read_table(path)
    tasks = prepare_tasks(table, prompt_col="prompt", id_col="id", answer_col="answer", kind_col="kind",
                          todo=np.sort(scan_task_ids(spec, None)))  # the plan is sorted
    assert all(field.type == pa.string() for field in tasks.schema)
    assert tasks.column("prompt").to_pylist() == [t["prompt"] for t in TASKS]
    assert tasks.column("reference").to_pylist() == [t["answer"] for t in TASKS]


@pytest.mark.parametrize("engine", ["pyarrow", "fastparquet"])
def test_pandas_categorical_columns_are_accepted(tmp_path, engine):
    path = tmp_path / "t.parquet"
    _write_frame(_frame(TASKS, "c"), path, engine)
    spec = inspect_inputs(str(path), **COLUMNS)
    assert is_text(pq.read_schema(path).field("prompt").type)
    assert len(scan_task_ids(spec, None)) == len(TASKS)


def test_dictionary_of_integers_is_an_id_column_and_dictionary_of_ints_is_not_a_prompt(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": pa.array([7, 8, 7 + 2]).dictionary_encode(),
                             "prompt": ["1 + 1 = ?", "2 + 2 = ?", "3 + 3 = ?"]}), path)
    assert len(scan_task_ids(inspect_inputs(str(path), **COLUMNS), None)) == 3
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"prompt": pa.array([1, 2]).dictionary_encode()}), bad)
    with pytest.raises(Exception, match="must hold strings, not int64"):
        inspect_inputs(str(bad), **COLUMNS)


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=4, include_dashboard=False)
    yield
    ray.shutdown()


def test_a_folder_mixing_every_encoding_runs_to_one_row_per_task(ray_local, tmp_path):
    data = tmp_path / "tasks"
    data.mkdir()
    chunks = [TASKS[i::3] for i in range(3)]
    for how in ENCODINGS:  # each file its own encoding and its own ids
        _write_pyarrow(data / f"{how}.parquet", how, chunks[ENCODINGS.index(how)], prefix=how[:2])
    _write_frame(_frame(chunks[0], "pd"), data / "pandas.parquet", "pyarrow")
    _write_frame(_frame(chunks[1], "fp"), data / "fastparquet.parquet", "fastparquet")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"batch_size": 4, "gsot": GSOT, "plots": False}))
    out = tmp_path / "out"
    code, output = quasar_run("--config", str(cfg), "--input", str(data), "--output", str(out))
    assert code == 0, output
    rows = [r for f in sorted((out / "results").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    expected = {f"{how[:2]}{i}" for how, chunk in zip(ENCODINGS, chunks) for i in range(len(chunk))}
    expected |= {f"pd{i}" for i in range(len(chunks[0]))} | {f"fp{i}" for i in range(len(chunks[1]))}
    assert sorted(r["id"] for r in rows) == sorted(expected)  # every task exactly once
    assert all(r["error"] is None and r["reference"] is not None for r in rows), rows
    assert json.loads((out / "report.json").read_text())["errors"] == 0
