"""`ray job submit` of jobs/batch_reason.py against a real, separate Ray cluster.

The cluster is this test's own: `ray start --head` on free ports with its own --temp-dir (so no
other `ray.init()` on the machine finds it), in its own process group. It is torn down by
killing that process group - never with `ray stop`, which would stop every Ray on the machine.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from quasar_dist.model.folder import SHIPPED

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
RAY = str(BIN / "ray") if (BIN / "ray").exists() else "ray"
HAS_TINY = (SHIPPED["tiny"] / "config.json").is_file()
NUM_TASKS = 4


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions `text` (our cluster's temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def cluster():
    temp_dir = tempfile.mkdtemp(prefix="qjs-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    gcs, dashboard, client, agent, metrics = free_ports(5)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0",
           # Ray 2.60 clusters require a token; the CLI sends ~/.ray/auth_token only in token mode
           "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [RAY, "start", "--head", f"--port={gcs}", "--num-cpus=3", f"--temp-dir={temp_dir}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}", f"--metrics-export-port={metrics}",
         "--disable-usage-stats"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # the daemons it leaves behind stay in this process group
    )
    try:
        output, _ = head.communicate(timeout=180)
        assert head.returncode == 0, output
        yield {"address": f"http://127.0.0.1:{dashboard}", "env": env, "metrics": f"http://127.0.0.1:{metrics}/metrics"}
    finally:
        _stop_group(head.pid)
        survivors = processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not survivors, f"processes of the test cluster survived: {survivors}"


def _stop_group(pgid: int) -> None:
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def job_config(tmp_path: Path) -> Path:
    if HAS_TINY:
        return REPO / "configs" / "runs" / "sample.yaml"
    from quasar_dist.parallel.toy_model import write_toy_model

    model = write_toy_model(tmp_path / "toy")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"model": str(model), "gsot": {"max_steps": 3, "max_new_tokens": 16}}))
    return path


def test_ray_job_submit_runs_the_batch_job_on_an_existing_cluster(cluster, tmp_path):
    out = tmp_path / "out"  # absolute: a relative one would land in the job's working-dir copy
    submit = subprocess.run(
        [RAY, "job", "submit", "--address", cluster["address"], "--submission-id", "quasar-batch-test",
         "--working-dir", ".", "--runtime-env", "jobs/runtime_env.yaml", "--",
         "python", "jobs/batch_reason.py", "--config", str(job_config(tmp_path)),
         "--output", str(out), "--limit", str(NUM_TASKS)],
        cwd=REPO, env=cluster["env"], capture_output=True, text=True, timeout=420,
    )
    logs = submit.stdout[-4000:] + submit.stderr[-2000:]
    status = subprocess.run([RAY, "job", "status", "--address", cluster["address"], "quasar-batch-test"],
                            env=cluster["env"], capture_output=True, text=True, timeout=60)
    assert "succeeded" in status.stdout.lower(), logs + status.stdout + status.stderr
    ids = [i for f in (out / "results").glob("part-*.parquet") for i in pq.read_table(f).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == NUM_TASKS, logs
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"] == NUM_TASKS and report["replicas"] == 1
    assert "quasar: 4 tasks in" in logs  # the job's own summary line reached the job logs
    assert scraped_count(cluster["metrics"], "ray_quasar_tasks_completed_total") == NUM_TASKS


def scraped_count(url: str, metric: str, timeout_s: float = 30.0) -> float:
    """What a Prometheus scraping the node's metrics endpoint sees (summed over tag sets); the
    agent exports what actors recorded every few seconds, so poll a little."""
    deadline, total = time.monotonic() + timeout_s, 0.0
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(metric + "{"))
        if total >= NUM_TASKS:
            break
        time.sleep(1.0)
    return total
