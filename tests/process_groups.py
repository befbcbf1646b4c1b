"""Killing what a SIGKILLed driver left behind: shared by the kill-and-resume tests."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path


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
