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

    def runnable(self) -> list[tuple[str, list[Sequence | None], list[Sequence]]]:
        """This step's forwards as (kind, rows, sequences), kinds as in model/cache_batch.py:
        - fresh: new prompts, right-padded to the longest of their group; grouped by length so
          padding stays under PAD_SHARE of the tokens and a group's attention stays bounded;
        - gather: equal-length forced chunks (probe prefixes) of slots that hold entries;
        - range: every single decoded token, as one batch over the range of their slots (slots
          in between that feed nothing are filler rows, None: their cache reads are views)."""
        fresh, chunks, decode = [], {}, []
        for slot in sorted(self.holding):
            seq = self.holding[slot]
            if seq.status is not SequenceStatus.RUNNING or not seq.feed:
                continue
            if seq.is_prompt_pending:
                fresh.append(seq)
            elif len(seq.feed) > 1:
                chunks.setdefault(len(seq.feed), []).append(seq)
            else:
                decode.append(seq)
        forwards = [("fresh", g, g) for g in prefill_groups(fresh)]
        forwards += [("gather", chunks[n], chunks[n]) for n in sorted(chunks)]
        if decode:
            first = decode[0].slot
            rows: list[Sequence | None] = [None] * (decode[-1].slot - first + 1)
            for seq in decode:
                rows[seq.slot - first] = seq
            forwards.append(("range", rows, decode))
        return forwards

    def compact(self) -> list[tuple[Sequence, int]]:
        """With nothing waiting to fill the holes that finished sequences leave, move the
        sequences of the highest slots into the lowest free ones. Returns (sequence, its old
        slot) per move; the runner copies the slot's cache rows (cheap next to computing holes
        of a decode batch at every step)."""
        moves = []
        while not self.waiting and self.free_slots and self.holding:
            highest = max(self.holding)
            lowest = self.free_slots[0]
            if lowest > highest:
                break
            heapq.heappop(self.free_slots)
            seq = self.holding.pop(highest)
            seq.slot = lowest
            self.holding[lowest] = seq
            heapq.heappush(self.free_slots, highest)
            moves.append((seq, highest))
        return moves

    def release(self, seq: Sequence) -> None:
        del self.holding[seq.slot]
        heapq.heappush(self.free_slots, seq.slot)
        seq.status = SequenceStatus.FINISHED

    def has_work(self) -> bool:
        return bool(self.waiting or self.holding)


PAD_SHARE = 0.25  # at most this share of a prefill group's tokens are padding
MAX_PREFILL_TOKENS = 2048
"""rows * length of one prefill group (vLLM's max_num_batched_tokens). It also bounds a group's
attention scores (rows * length^2 <= 2,048 * 1,024, ~8 MB: two or more rows are at most 1,024
long), which a separate bound on them (4M) used to do. Smaller forwards keep a
prefill's temporaries in the CPU's caches: on the shipped model's throughput workload, 2,048
tokens per forward gave 1.10-1.24x the tokens/s of one forward per length group (up to 10,000
tokens), 1,024 a little less (docs/benchmarks.md)."""


def prefill_groups(seqs: list[Sequence]) -> list[list[Sequence]]:
    """New prompts into few forwards: by length, a group grows while its padding (to its longest
    prompt) stays under PAD_SHARE and its tokens (padding included) under MAX_PREFILL_TOKENS."""
    groups, group, real = [], [], 0
    for seq in sorted(seqs, key=lambda s: len(s.feed)):
        n = len(seq.feed)  # the longest so far (sorted)
        padded = (len(group) + 1) * n
        if group and (padded - real - n > PAD_SHARE * padded or padded > MAX_PREFILL_TOKENS):
            groups.append(group)
            group, real = [], 0
        group.append(seq)
        real += n
    return groups + ([group] if group else [])
