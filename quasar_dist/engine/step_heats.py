"""Step heats computed late, many boundaries at once (docs/engine.md "Deferred heats").

A step's heat is the mean temperature of its tokens under the context after the step, and
with the chain context (ModelConfig.ttm_hops) that context hops over every entry before the
boundary. Computed at each boundary (the commit), that is a matrix-vector product per slot and
hop over all of the slot's entries: memory-bound, ~0.1 ms per slot on this CPU, paid for every
step of every sequence. Nobody needs the heat then unless the reasoning loop decides on it
(backtracking: Sequence.heat_at_boundary) or guidance reads temperatures. So where neither
holds (the runner's lazy refresh) a boundary only logs its context ([B c ; E c], one row of the
cache's boundary log) and, on the host, what it saw (a `Boundary`); the heats of all the
logged boundaries of a sequence come later in one computation, every boundary's query a row
of one matrix product per hop (model.boundary_heats). A sequence's are settled when
something reads its temperatures, evicts from it or fills its log (one sequence at a time),
and otherwise after its release, together with those of other released sequences (`Retired`). The heats equal the commit's
up to float rounding (the same formula, another summation order).
"""
from __future__ import annotations

from dataclasses import dataclass

from .runner import ModelRunner, to_host
from .sequence import Sequence


@dataclass(slots=True)
class Boundary:
    step: int
    """The sequence's num_steps after the boundary (0: the prompt's, which has no heat)."""
    seen: int
    """Live entries at the boundary: its chain context reads them."""
    in_step: int
    """How many of the last of them are the step's own tokens (the heat's entries)."""


def settle(runner: ModelRunner, seqs: list[Sequence]) -> None:
    """Compute the heats of every logged boundary of the live `seqs` (one batched computation,
    one transfer) into each sequence's step_heats, and empty their logs."""
    seqs = [s for s in seqs if s.boundaries]
    if seqs:
        _store(seqs, runner.boundary_heats([s.slot for s in seqs], *_logs(seqs)))


class Retired:
    """Sequences released with heats still deferred. Their slots are freed at once: what the
    heats read (each slot's A h and boundary log) is copied out at the release, two copies, and
    the heats of many released sequences are computed together later (`settle`), one call for
    what would be one per engine step with stops (~1 ms each on this CPU, nearly all of it fixed
    cost: docs/engine.md "Deferred heats")."""

    def __init__(self) -> None:
        self.seqs: list[Sequence] = []
        self._copies: list = []

    def __len__(self) -> int:
        return len(self.seqs)

    def add(self, runner: ModelRunner, seq: Sequence) -> None:
        """Copy out what the heats of the sequence's steps read; the prompt's boundary has no
        heat, and nothing after the release reads its context: it is left out (a sixth of the
        work on the bench's short tasks)."""
        first = next((i for i, b in enumerate(seq.boundaries) if b.step > 0), len(seq.boundaries))
        seq.boundaries = seq.boundaries[first:]
        if not seq.boundaries:
            return
        self._copies.append(runner.copy_boundaries(seq.slot, max(b.seen for b in seq.boundaries), first,
                                                   first + len(seq.boundaries)))
        self.seqs.append(seq)

    def settle(self, runner: ModelRunner) -> None:
        """The heats of every retired sequence, into their step_heats: one computation per
        group of similar sizes (`similar_groups`)."""
        copies = {id(seq): c for seq, c in zip(self.seqs, self._copies)}
        for group in similar_groups(self.seqs):
            _store(group, runner.copied_boundary_heats([copies[id(s)] for s in group], *_logs(group)))
        self.clear()

    def clear(self) -> None:
        self.seqs, self._copies = [], []


PAD_SHARE = 0.25
"""At most this share of a heat computation's [rows, boundaries, entries] is padding."""


def similar_groups(seqs: list[Sequence]) -> list[list[Sequence]]:
    """Sequences into groups whose padded work stays under PAD_SHARE waste. A computation is
    dense over [B, K, T] (K the longest log, T the most entries of its rows), and released
    sequences differ a lot: on the bench's 200 short tasks K is 3-7 and T 34-119, so one
    computation for all of them was 2.6 times its real work. Sorted by size, grown while
    the padding stays small (prefill's grouping, scheduler.prefill_groups, in two dimensions)."""
    def size(seq: Sequence) -> tuple[int, int]:
        return len(seq.boundaries), max(b.seen for b in seq.boundaries)

    groups, group, real, most = [], [], 0, (0, 0)
    for seq in sorted(seqs, key=lambda s: size(s)[::-1]):
        k, t = size(seq)
        grown = (max(most[0], k), max(most[1], t))
        if group and (len(group) + 1) * grown[0] * grown[1] * (1 - PAD_SHARE) > real + k * t:
            groups.append(group)
            group, real, grown = [], 0, (k, t)
        group.append(seq)
        real += k * t
        most = grown
    return groups + ([group] if group else [])


def _logs(seqs: list[Sequence]) -> tuple[list[list[int]], list[list[int]]]:
    """(entries seen, entries of the step) of each logged boundary (0 in the step: the prompt's)."""
    return ([[b.seen for b in s.boundaries] for s in seqs],
            [[b.in_step if b.step > 0 else 0 for b in s.boundaries] for s in seqs])


def _store(seqs: list[Sequence], heats) -> None:
    """The heats [B * K] (row-major, K the longest log) onto each sequence's step_heats, in
    place (a finished task holds that list: reasoning/gsot.py), and empty the logs."""
    longest = max(len(s.boundaries) for s in seqs)
    (values,) = to_host(heats)
    for i, seq in enumerate(seqs):
        seq.step_heats.extend(values[i * longest + j] for j, b in enumerate(seq.boundaries) if b.step > 0)
        seq.boundaries = []


def forget_after(seq: Sequence, num_steps: int) -> None:
    """A rollback to the boundary of step `num_steps`: the heats and logged boundaries of later
    steps are gone with their steps."""
    del seq.step_heats[num_steps:]
    seq.boundaries = [b for b in seq.boundaries if b.step <= num_steps]
