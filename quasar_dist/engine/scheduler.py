"""CPU decisions only: which sequence gets which cache slot, and what runs at the next step.

Continuous batching: a slot is freed the moment the caller releases a sequence, and the next
queued sequence is admitted into it at the next step, while the others keep decoding.
"""
from __future__ import annotations

import heapq
from collections import deque

from .sequence import Sequence, SequenceStatus


class Scheduler:
    def __init__(self, num_slots: int) -> None:
        self.num_slots = num_slots
        self.free_slots = list(range(num_slots))  # a heap: the lowest free slot is taken first
        self.waiting: deque[Sequence] = deque()
        self.holding: dict[int, Sequence] = {}  # slot -> sequence (running or paused)

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def admit(self) -> list[Sequence]:
        """First come, first served into free slots; returns the newly admitted sequences."""
        admitted = []
        while self.waiting and self.free_slots:
            seq = self.waiting.popleft()
            seq.slot = heapq.heappop(self.free_slots)
            seq.status = SequenceStatus.RUNNING
            self.holding[seq.slot] = seq
            admitted.append(seq)
        return admitted

    def runnable(self) -> list[list[Sequence]]:
        """Sequences with tokens to feed, grouped by how many (each group is one batched
        forward): all single decoded tokens together, equal-length chunks (forced probe
        prefixes, prompts) together. Slot order inside a group, smallest chunks first."""
        groups: dict[int, list[Sequence]] = {}
        for slot in sorted(self.holding):
            seq = self.holding[slot]
            if seq.status is SequenceStatus.RUNNING and seq.feed:
                groups.setdefault(len(seq.feed), []).append(seq)
        return [groups[n] for n in sorted(groups)]

    def release(self, seq: Sequence) -> None:
        del self.holding[seq.slot]
        heapq.heappush(self.free_slots, seq.slot)
        seq.status = SequenceStatus.FINISHED

    def has_work(self) -> bool:
        return bool(self.waiting or self.holding)
