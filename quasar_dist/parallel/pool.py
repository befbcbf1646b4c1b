"""ReplicaPool: `replicas` gangs used as a pool. Batches go to whichever replica is free; results
come back in input order.

One driver thread per replica: it takes the next batch off a shared queue, runs it on its gang
(blocking on Ray) and stores the result at the batch's index. A slow replica simply takes fewer
batches. Gang failures are handled inside each gang (rebuild + retry, then error rows).
"""
from __future__ import annotations

import math
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import ParallelConfig
from .gang import ReplicaGang


class ReplicaPool:
    def __init__(self, model: str | Path, parallel: ParallelConfig | None = None, *,
                 guidance: str | None = None) -> None:
        self.parallel = parallel or ParallelConfig()
        self.gangs: list[ReplicaGang] = []
        self.dispatch_log: list[tuple[int, int]] = []  # (batch index, replica) of the last map
        # start the replicas concurrently: each start is seconds of actor and model set-up
        with ThreadPoolExecutor(self.parallel.replicas) as ex:
            futures = [ex.submit(ReplicaGang, model, self.parallel, guidance=guidance)
                       for _ in range(self.parallel.replicas)]
        errors = [f.exception() for f in futures if f.exception() is not None]
        self.gangs = [f.result() for f in futures if f.exception() is None]
        if errors:
            self.shutdown()
            raise errors[0]

    def map(self, fn: Callable[[ReplicaGang, Any], Any], items: Sequence) -> list:
        """[fn(gang, item) for item in items], each item on whichever replica is free."""
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(len(items)):
            todo.put(i)
        results: list = [None] * len(items)
        errors: list[BaseException] = []
        log_lock = threading.Lock()
        self.dispatch_log = []

        def drain(replica: int) -> None:
            while not errors:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                with log_lock:
                    self.dispatch_log.append((i, replica))
                try:
                    results[i] = fn(self.gangs[replica], items[i])
                except BaseException as exc:  # stop the pool; re-raised below
                    errors.append(exc)

        with ThreadPoolExecutor(len(self.gangs)) as ex:
            list(ex.map(drain, range(len(self.gangs))))
        if errors:
            raise errors[0]
        return results

    def solve(self, prompts: Sequence[str], reasoning_cfg: dict | None = None,
              batch_size: int | None = None) -> list[dict]:
        """Rows for all prompts, in order; batches default to an even split over the replicas."""
        prompts = list(prompts)
        size = batch_size or max(1, math.ceil(len(prompts) / len(self.gangs)))
        batches = [prompts[i:i + size] for i in range(0, len(prompts), size)]
        rows = self.map(lambda gang, batch: gang.solve(batch, reasoning_cfg), batches)
        return [row for batch_rows in rows for row in batch_rows]

    def shutdown(self) -> None:
        for gang in self.gangs:
            gang.shutdown()
        self.gangs = []

    def __enter__(self) -> "ReplicaPool":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
