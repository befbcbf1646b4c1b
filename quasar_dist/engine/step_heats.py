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
of one matrix product per hop (model.boundary_heats). They are settled, batched across
sequences, when sequences stop in a step, and one sequence at a time when something reads
its temperatures, evicts from it, fills its log, or releases it. The heats equal the commit's
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
    """Compute the heats of every logged boundary of `seqs` (one batched computation, one
    transfer) into each sequence's step_heats, and empty their logs."""
    seqs = [s for s in seqs if s.boundaries]
    if not seqs:
        return
    longest = max(len(s.boundaries) for s in seqs)
    heats = runner.boundary_heats([s.slot for s in seqs], [[b.seen for b in s.boundaries] for s in seqs],
                                  [[b.in_step if b.step > 0 else 0 for b in s.boundaries] for s in seqs])
    (values,) = to_host(heats)
    for i, seq in enumerate(seqs):
        seq.step_heats += [values[i * longest + j] for j, b in enumerate(seq.boundaries) if b.step > 0]
        seq.boundaries = []


def forget_after(seq: Sequence, num_steps: int) -> None:
    """A rollback to the boundary of step `num_steps`: the heats and logged boundaries of later
    steps are gone with their steps."""
    del seq.step_heats[num_steps:]
    seq.boundaries = [b for b in seq.boundaries if b.step <= num_steps]
