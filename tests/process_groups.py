"""Killing what a SIGKILLed driver left behind: shared by the kill-and-resume tests."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


def sigkill_driver_when(cmd: list[str], ready: Callable[[], bool], log: Path, *, timeout_s: float = 240,
                        cwd: Path | None = None) -> bool:
    """Start `cmd` in its own session (so its own local Ray instance: RAY_ADDRESS dropped), output
    to `log`; as soon as `ready()` holds or the driver ended, SIGKILL it and everything in its
    process group. Returns whether the driver was still running when killed."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready() and proc.poll() is None:
            assert time.monotonic() < deadline, f"not ready to kill after {timeout_s} s\n{log.read_text()}"
            time.sleep(0.02)
        alive = proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        kill_group(proc.pid)
    return alive


def kill_group(pgid: int, timeout_s: float = 30) -> None:
    """SIGKILL process group `pgid` (a driver started in its own session, with the local Ray
    instance it spawned) until none of its members is alive."""
    deadline = time.monotonic() + timeout_s
    while live_members(pgid):
        assert time.monotonic() < deadline, f"processes of the killed run survived: {live_members(pgid)}"
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def live_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` that are not zombies (from /proc/<pid>/stat)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids
