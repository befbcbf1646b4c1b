"""Faults, end to end on real Ray (CPU): every input id ends up in OUTPUT/results exactly once,
or the run stops with a one-line error and a rerun finishes the job. docs/hardening.md tables
the observed behaviour.

Not slow (in `make test`): a batch that keeps killing its replica (bounded retries, then error
rows, the job goes on), a disk that fills up mid-run (real tmpfs), a results folder that turns
read-only mid-run (read-only bind mount: we run as root, so chmod would not stop a write).
Slow (`-m slow`): a TP rank killed mid-batch (tp=2), a whole replica killed (all rank processes
of its gang; the Ray Data UDF actor), the driver SIGKILLed at three points and resumed.

One module-scoped local Ray instance; subprocess runs start (and lose) their own.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml

from quasar_dist.batch.stage import ReasonStage
from quasar_dist.data.tasks import make_tasks, write_tasks
from process_groups import sigkill_driver_when
from test_batch import quasar_run

REPO = Path(__file__).resolve().parent.parent
QUASAR = str(REPO / ".venv" / "bin" / "quasar") if (REPO / ".venv" / "bin" / "quasar").exists() else "quasar"
GSOT = {"max_steps": 3, "max_new_tokens": 24, "max_batch_size": 4}
LONG = {"max_steps": 8, "max_new_tokens": 64, "max_batch_size": 8}  # a call long enough to kill into


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=6, include_dashboard=False)  # over-subscribed on 2 cores: fine for tests
    yield
    ray.shutdown()


def tasks_file(path: Path, n: int, seed: int = 0) -> Path:
    return write_tasks(make_tasks("mixed", n, seed), path)


def run_yaml(path: Path, **extra) -> Path:
    path.write_text(yaml.safe_dump({"batch_size": 2, "flush_rows": 2, "gsot": GSOT, "plots": False, **extra}))
    return path


def result_ids(out: Path) -> list[str]:
    files = sorted((out / "results").glob("part-*.parquet"))
    return [i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


def assert_each_id_once(out: Path, tasks: Path) -> None:
    assert sorted(result_ids(out)) == sorted(pq.read_table(tasks).column("id").to_pylist())
    assert not list((out / "results").glob(".*.tmp"))


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def in_background(fn) -> tuple[threading.Thread, list]:
    errors: list = []

    def body():
        try:
            fn()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, errors

def assert_replicas_released() -> None:
    """A run in the caller's session hands back every CPU its replicas held, also when it failed
    (its killed stage actors left their placement groups behind before job.release_stream)."""
    from ray.util import placement_group_table

    def released() -> bool:
        live = [g for g in placement_group_table().values() if g["state"] != "REMOVED"]
        return not live and ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"]

    wait_for(released, 30, "the run's placement groups and CPUs to be released")


def assert_stopped_with_one_line(thread, errors, code, output: str, out: Path, cause: str) -> list[str]:
    """A write failure mid-run: exit 1 with one `quasar: error:` line naming `cause`, and the
    result files written before it hold some of the 24 ids, each once. Returns those ids."""
    thread.join()
    assert not errors, errors
    assert code == 1, output
    ours = [line for line in output.splitlines() if line.startswith("quasar: error: ")]
    assert len(ours) == 1 and "cannot write results" in ours[0] and cause in ours[0], output
    done = result_ids(out)
    assert 0 < len(done) < 24 and len(done) == len(set(done))
    return done



def alive_actor_pids(class_part: str) -> list[int]:
    """Pids of this Ray instance's alive actors whose class name contains `class_part` (GCS table)."""
    from ray._private.state import actors

    return [info["Pid"] for info in actors().values()
            if info.get("State") == "ALIVE" and class_part in info.get("ActorClassName", "") and info.get("Pid")]


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MiB tmpfs (we are root); unmounted (lazily, if busy) at the end."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        sh("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt))
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-R", "-l", str(mnt)], capture_output=True)


# -- bounded retries ---------------------------------------------------------------------------
def test_batch_that_keeps_killing_its_replica_is_retried_bounded_times_then_error_rows(ray_local):
    """ReasonStage (the Ray Data UDF) with max_restarts=2: a batch whose replica dies every time is
    tried 3 times (2 rebuilds), its rows come back with `error`; the next batch runs normally."""
    stage = ReasonStage("tiny", gsot=LONG, parallel={"tp": 1, "max_restarts": 2})
    prompts = [t["prompt"] for t in make_tasks("arith", 8, 3)]
    batch = pa.table({"id": [str(i) for i in range(8)], "prompt": prompts,
                      "reference": [None] * 8, "kind": ["arith"] * 8})
    kills, stop = [], threading.Event()

    def killer():
        while not stop.is_set():
            gang = stage.gang
            if gang.busy and gang.actors:
                actor = gang.actors[0]
                ray.kill(actor, no_restart=True)
                kills.append(time.monotonic())
                while gang.actors and gang.actors[0] is actor and not stop.is_set():
                    time.sleep(0.005)
            time.sleep(0.002)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        rows = stage(batch).to_pylist()
    finally:
        stop.set()
        thread.join()
    assert len(kills) == 3 and stage.gang.num_restarts == 2
    assert [r["id"] for r in rows] == [str(i) for i in range(8)]
    assert all(r["stop_reason"] == "error" and "gave up after 3 failures" in r["error"] for r in rows), rows[0]
    rows = stage(batch.slice(0, 4)).to_pylist()  # the job goes on: a fresh gang
    assert stage.gang.num_restarts == 3
    assert [r["error"] for r in rows] == [None] * 4 and [r["id"] for r in rows] == ["0", "1", "2", "3"]
    stage.gang.shutdown()


# -- the output path fails mid-run -------------------------------------------------------------
def test_disk_full_mid_run_is_one_line_and_resumes_without_half_written_files(ray_local, tmp_path, tmpfs):
    tasks = tasks_file(tmp_path / "tasks.parquet", 24)
    out = tmpfs / "out"
    args = ["--config", str(run_yaml(tmp_path / "run.yaml")), "--input", str(tasks), "--output", str(out)]
    filler = tmpfs / "filler"

    def fill_disk():
        wait_for(lambda: list((out / "results").glob("part-*.parquet")), 240, "the first result file")
        with open(filler, "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    thread, errors = in_background(fill_disk)
    code, output = quasar_run(*args)
    done = assert_stopped_with_one_line(thread, errors, code, output, out, "No space left on device")
    assert not list((out / "results").glob(".*.tmp"))  # no half-written file left to be taken as done
    assert_replicas_released()

    filler.unlink()
    code, output = quasar_run(*args)
    assert code == 0, output
    assert_each_id_once(out, tasks)
    report = json.loads((out / "report.json").read_text())
    assert (report["tasks"], report["skipped_resumed"]) == (24, len(done))


def test_results_folder_made_read_only_mid_run_is_one_line_then_resumable(ray_local, tmp_path, tmpfs):
    tasks = tasks_file(tmp_path / "tasks.parquet", 24, seed=1)
    out = tmpfs / "out"
    results = out / "results"
    results.mkdir(parents=True)
    try:
        sh("mount", "--bind", str(results), str(results))
    except subprocess.CalledProcessError:
        pytest.skip("cannot bind-mount here")  # its own mount: remount it read-only alone
    args = ["--config", str(run_yaml(tmp_path / "run.yaml")), "--input", str(tasks), "--output", str(out)]

    def make_read_only():
        wait_for(lambda: list(results.glob("part-*.parquet")), 240, "the first result file")
        for _ in range(100):  # EBUSY while a temp file is open for writing: try again
            if subprocess.run(["mount", "-o", "remount,bind,ro", str(results)], capture_output=True).returncode == 0:
                return
            time.sleep(0.02)
        raise AssertionError("could not remount read-only")

    thread, errors = in_background(make_read_only)
    code, output = quasar_run(*args)
    assert_stopped_with_one_line(thread, errors, code, output, out, "Read-only file system")
    assert_replicas_released()

    sh("mount", "-o", "remount,bind,rw", str(results))  # permissions restored
    code, output = quasar_run(*args)
    assert code == 0, output
    assert_each_id_once(out, tasks)
    assert_replicas_released()


def test_read_only_output_at_start_is_one_line(tmp_path):
    """No Ray needed: refused before anything starts."""
    folder = tmp_path / "ro"
    folder.mkdir()
    try:
        sh("mount", "--bind", str(folder), str(folder))
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("cannot bind-mount here")
    try:
        sh("mount", "-o", "remount,bind,ro", str(folder))
        code, output = quasar_run("--output", str(folder / "out"), "--limit", "1")
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    assert code == 1 and output.strip() == f"quasar: error: output {folder / 'out'} is not writable (Read-only file system)"


# -- slow: kills -------------------------------------------------------------------------------
@pytest.mark.slow
def test_tp2_rank_killed_mid_batch_every_row_once(ray_local):
    stage = ReasonStage("tiny", gsot=LONG, parallel={"tp": 2, "max_restarts": 2})
    prompts = [t["prompt"] for t in make_tasks("mixed", 12, 5)]
    batch = pa.table({"id": [f"k{i}" for i in range(12)], "prompt": prompts,
                      "reference": [None] * 12, "kind": [None] * 12})
    reference = stage(batch).to_pylist()
    result: list = []
    thread = threading.Thread(target=lambda: result.append(stage(batch).to_pylist()), daemon=True)
    thread.start()
    wait_for(lambda: stage.gang.busy, 60, "the call to start")
    ray.kill(stage.gang.actors[1])
    thread.join(300)
    rows = result[0]
    assert stage.gang.num_restarts == 1
    assert [r["id"] for r in rows] == [f"k{i}" for i in range(12)] and all(r["error"] is None for r in rows)
    assert [r["answer"] for r in rows] == [r["answer"] for r in reference]  # same greedy result after rebuild
    stage.gang.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["RankWorker", "MapWorker"])
def test_whole_replica_killed_mid_run_every_id_once(ray_local, tmp_path, victim):
    """RankWorker: every rank process of the gang (tp=2) SIGKILLed -> the gang rebuilds.
    MapWorker: the Ray Data UDF actor (which owns the gang) SIGKILLed -> Ray Data restarts it
    and retries its batches; the ledger drops anything that comes back twice."""
    tasks = tasks_file(tmp_path / "tasks.parquet", 24, seed=2)
    out = tmp_path / "out"
    args = ["--config", str(run_yaml(tmp_path / "run.yaml")), "--input", str(tasks), "--output", str(out),
            "--tp", "2"]
    killed: list[int] = []

    def kill_replica():
        wait_for(lambda: list((out / "results").glob("part-*.parquet")), 300, "the first result file")
        pids = alive_actor_pids(victim)
        assert pids, f"no alive {victim}"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # processes of this test's own Ray instance
            killed.append(pid)

    thread, errors = in_background(kill_replica)
    code, output = quasar_run(*args)
    thread.join()
    assert not errors, errors
    assert killed
    if code != 0:  # a clean stop is acceptable too, if the rerun finishes the job
        assert [line for line in output.splitlines() if line.startswith("quasar: error: ")], output
        code, output = quasar_run(*args)
    assert code == 0, output
    assert_each_id_once(out, tasks)
    assert_replicas_released()
    print(f"\n{victim}: killed pids {killed}; first run exit {code}")


@pytest.mark.slow
def test_driver_sigkilled_at_three_points_then_resumed_every_id_once(ray_local, tmp_path):
    n = 24
    tasks = tasks_file(tmp_path / "tasks.parquet", n, seed=3)
    out = tmp_path / "out"
    args = ["--config", str(run_yaml(tmp_path / "run.yaml")), "--input", str(tasks), "--output", str(out)]
    points = {
        "right after start": lambda: time.sleep(1.5) or True,
        "mid-stream": lambda: len(result_ids(out)) > len(seen[-1]),
        "after the final result write": lambda: len(result_ids(out)) == n,
    }
    seen: list[list[str]] = [[]]
    for name, ready in points.items():
        log = tmp_path / f"{name.replace(' ', '_')}.log"
        alive = sigkill_driver_when([QUASAR, "run", *args], ready, log, timeout_s=300)
        assert alive, f"{name}: the run ended before the kill\n{log.read_text()}"
        ids = result_ids(out)
        assert len(ids) == len(set(ids)), name  # never a duplicate, even killed
        seen.append(ids)
        print(f"\nkilled {name}: {len(ids)} ids committed")
    code, output = quasar_run(*args)
    assert code == 0, output
    assert_each_id_once(out, tasks)
    report = json.loads((out / "report.json").read_text())
    assert (report["tasks"], report["skipped_resumed"]) == (n, len(seen[-1]))
