"""`quasar run` with --input and --output on an object store: a real S3 API (moto's server) on
127.0.0.1, reached through pyarrow's S3 filesystem, credentials from the environment only.

No Ray first: URI checks, the same one-line input errors as for local folders, the commit-record
protocol (uncommitted parts ignored, then cleaned), a wrong bucket or missing credentials (one
line, exit 1, nothing written). Then one run SIGKILLed mid-way and rerun: every id exactly once.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from click.testing import CliRunner

from quasar_dist.batch.inputs import inspect_inputs
from quasar_dist.batch.results_store import ResultWriter, clean_temp_files, read_done_hashes
from quasar_dist.batch.schema import output_row, output_table
from quasar_dist.batch.uri import is_uri, local_path
from quasar_dist.cli import main
from quasar_dist.data.tasks import make_tasks, write_tasks
from quasar_dist.model.folder import SHIPPED
from quasar_dist.util.errors import InputError
from process_groups import sigkill_driver_when
from s3_server import s3_server

pytest.importorskip("moto.server")

REPO = Path(__file__).resolve().parent.parent
QUASAR = str(REPO / ".venv" / "bin" / "quasar") if (REPO / ".venv" / "bin" / "quasar").exists() else "quasar"
HAS_TINY = (SHIPPED["tiny"] / "config.json").is_file()
GSOT = {"max_steps": 4, "max_new_tokens": 32, "max_batch_size": 4}
COLUMNS = dict(prompt_col="prompt", id_col="id", answer_col="answer", kind_col="kind")


@pytest.fixture(scope="module")
def s3():
    saved = dict(os.environ)
    with s3_server("quasar", "empty") as server:
        os.environ.update(server.env)  # the standard place: every process started from here reads them
        try:
            yield server
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture(scope="module")
def run_yaml(tmp_path_factory, model) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    path.write_text(yaml.safe_dump({"model": model, "batch_size": 2, "flush_rows": 4, "gsot": GSOT}))
    return path


def upload(s3, local: Path, key: str) -> str:
    s3.client().upload_file(str(local), "quasar", key)
    return f"s3://quasar/{key}"


def quasar_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def store_results(s3, prefix: str) -> pa.Table:
    """What a reader of the store sees: the committed parts only."""
    client = s3.client()
    committed = [k for k in s3.keys("quasar", f"{prefix}/results/_committed/")]
    tables = []
    for record in committed:
        part = f"{prefix}/results/" + record.rsplit("/", 1)[1].removesuffix(".json")
        body = client.get_object(Bucket="quasar", Key=part)["Body"].read()
        tables.append(pq.read_table(pa.BufferReader(body)))
    return pa.concat_tables(tables) if tables else pa.table({"id": pa.array([], pa.string())})


# -- no Ray ------------------------------------------------------------------------------------
def test_uris_are_checked_and_file_uris_are_local_paths():
    assert is_uri("s3://b/x") and is_uri("gs://b/x") and not is_uri("/tmp/x") and not is_uri("file:///tmp/x")
    assert local_path("file:///tmp/x y") == "/tmp/x y" and local_path("runs/x") == "runs/x"
    for bad, words in [("ftp://h/x", "unsupported URI scheme 'ftp'"),
                       ("s3://AKIA:secret@bucket/x", "credentials in the URI are refused"),
                       ("s3://bucket/x?secret_key=abc", "credentials in the URI (secret_key=...)")]:
        with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
            inspect_inputs(bad, **COLUMNS)
        assert "secret" not in str(err.value).replace("secret_key", "") and "AKIA" not in str(err.value)


def test_inputs_on_the_store_give_the_same_one_line_errors(s3, tmp_path):
    tasks = upload(s3, write_tasks(make_tasks("mixed", 6, 0), tmp_path / "t.parquet"), "in/ok/a.parquet")
    s3.client().put_object(Bucket="quasar", Key="in/ok/_SUCCESS", Body=b"")  # side files are skipped
    spec = inspect_inputs("s3://quasar/in/ok/", **COLUMNS)
    assert (spec.files, spec.num_rows, spec.id_col) == ([tasks], 6, "id")
    assert inspect_inputs("s3://quasar/in/*/a.parquet", **COLUMNS).files == [tasks]
    s3.client().put_object(Bucket="quasar", Key="in/csv/tasks.parquet", Body=b"id,prompt\n1,hi\n")
    pq.write_table(pa.table({"id": ["1"], "question": ["hi"]}), tmp_path / "q.parquet")
    upload(s3, tmp_path / "q.parquet", "in/noprompt/q.parquet")
    for uri, expected in [("s3://quasar/in/missing/", "s3://quasar/in/missing/: no such file or folder"),
                          ("s3://quasar/in/csv/", "s3://quasar/in/csv/tasks.parquet: not a readable Parquet file"),
                          ("s3://quasar/in/noprompt/", "s3://quasar/in/noprompt/q.parquet: no prompt column 'prompt'"),
                          ("s3://empty/", "s3://empty/: folder holds no .parquet files"),
                          ("s3://no-such-bucket/in/", "bucket 'no-such-bucket' does not exist")]:
        with pytest.raises(InputError) as err:
            inspect_inputs(uri, **COLUMNS)
        assert expected in str(err.value) and "\n" not in str(err.value)


def test_parts_count_only_once_committed_and_a_rerun_cleans_the_rest(s3):
    out = "s3://quasar/unit"
    writer = ResultWriter(out, "r1", flush_rows=2, flush_interval_s=3600)
    row = output_row({"id": "a", "prompt": "p", "reference": "1"}, {"answer": "1", "generated_tokens": 3},
                     mode="gsot", model="m", run_id="r1", finished_at=time.time())
    writer.add(output_table([row]))
    assert s3.keys("quasar", "unit/") == []  # below flush_rows: nothing written yet
    writer.add(output_table([{**row, "id": "b"}]))
    # a part a killed run wrote whole but never committed: not counted, then deleted
    buffer = pa.BufferOutputStream()
    pq.write_table(output_table([{**row, "id": "c"}]), buffer)
    s3.client().put_object(Bucket="quasar", Key="unit/results/part-killed-00000.parquet", Body=buffer.getvalue().to_pybytes())
    assert len(read_done_hashes(out)) == 2
    # a committed part written before dropped_token_layers existed: the report reads it as 0
    from quasar_dist.batch.store_results import COMMITTED, RECORD_SUFFIX
    from quasar_dist.report.results_table import read_results
    old = pa.BufferOutputStream()
    pq.write_table(output_table([{**row, "id": "d", "dropped_token_layers": 5}]).drop_columns(["dropped_token_layers"]), old)
    s3.client().put_object(Bucket="quasar", Key="unit/results/part-old-00000.parquet", Body=old.getvalue().to_pybytes())
    s3.client().put_object(Bucket="quasar", Key=f"unit/results/{COMMITTED}/part-old-00000.parquet{RECORD_SUFFIX}", Body=b"{}")
    assert sorted(read_results(out).column("dropped_token_layers").to_pylist()) == [0, 0, 0]
    s3.client().delete_object(Bucket="quasar", Key="unit/results/part-old-00000.parquet")
    s3.client().delete_object(Bucket="quasar", Key=f"unit/results/{COMMITTED}/part-old-00000.parquet{RECORD_SUFFIX}")
    assert clean_temp_files(out) == 1
    assert [k for k in s3.keys("quasar", "unit/results/") if k.endswith(".parquet")] == ["unit/results/part-r1-00000.parquet"]


def test_wrong_bucket_or_missing_credentials_is_one_line_and_writes_nothing(s3, tmp_path, monkeypatch, model):
    tasks = upload(s3, write_tasks(make_tasks("mixed", 4, 0), tmp_path / "t.parquet"), "in/four/a.parquet")
    code, output = quasar_run("--input", tasks, "--output", "s3://no-such-bucket/run", "--model", model)
    assert code == 1 and output.count("\n") == 1, output
    assert output.startswith("quasar: error: output s3://no-such-bucket/run: bucket 'no-such-bucket' does not exist")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, output = quasar_run("--input", tasks, "--output", "s3://quasar/nocreds", "--model", model)
    assert code == 1 and output.count("\n") == 1 and "refused access" in output, output
    assert s3.env["AWS_SECRET_ACCESS_KEY"] not in output
    assert s3.keys("quasar", "nocreds") == []


# -- on Ray ------------------------------------------------------------------------------------
def test_run_on_the_store_killed_then_resumed_writes_every_id_exactly_once(s3, tmp_path, run_yaml):
    num_tasks = 32
    upload(s3, write_tasks(make_tasks("mixed", num_tasks, 3), tmp_path / "t.parquet"), "in/kill/tasks.parquet")
    out = "s3://quasar/runs/kill"
    args = ["--config", str(run_yaml), "--input", "s3://quasar/in/kill/", "--output", out]
    last = [0.0]

    def committed() -> bool:  # polled from the test: a few requests a second, not a busy loop
        if time.monotonic() - last[0] < 0.2:
            return False
        last[0] = time.monotonic()
        return bool(s3.keys("quasar", "runs/kill/results/_committed/"))

    sigkill_driver_when([QUASAR, "run", *args], committed, tmp_path / "killed.log")
    killed = store_results(s3, "runs/kill").num_rows
    assert 0 < killed < num_tasks, (tmp_path / "killed.log").read_text()
    # as if killed between writing a part and its commit record
    s3.client().put_object(Bucket="quasar", Key="runs/kill/results/part-torn-00000.parquet", Body=b"PAR1")

    ray.init(num_cpus=4, include_dashboard=False)  # after the environment holds the store's keys
    try:
        code, output = quasar_run(*args)
        assert code == 0, output
        ids = store_results(s3, "runs/kill").column("id").to_pylist()
        assert sorted(ids) == sorted(pq.read_table(tmp_path / "t.parquet").column("id").to_pylist())
        assert "runs/kill/results/part-torn-00000.parquet" not in s3.keys("quasar", "runs/kill/")
        report = json.loads(s3.client().get_object(Bucket="quasar", Key="runs/kill/report.json")["Body"].read())
        assert (report["tasks"], report["skipped_resumed"], report["computed_last_run"]) == (num_tasks, killed, num_tasks - killed)
        config = s3.client().get_object(Bucket="quasar", Key="runs/kill/config.yaml")["Body"].read().decode()
        assert s3.env["AWS_SECRET_ACCESS_KEY"] not in config and s3.env["AWS_ACCESS_KEY_ID"] not in config
        keys = s3.keys("quasar", "runs/kill/")
        assert {"runs/kill/report.md", "runs/kill/runs.jsonl", "runs/kill/plots/throughput.png"} <= set(keys)

        code, output = quasar_run(*args)  # complete: recomputes nothing, writes no new part
        assert code == 0, output
        assert [k for k in s3.keys("quasar", "runs/kill/results/")] == [k for k in keys if "/results/" in k]
        assert json.loads(s3.client().get_object(Bucket="quasar", Key="runs/kill/report.json")["Body"].read())[
            "computed_last_run"] == 0
    finally:
        ray.shutdown()
