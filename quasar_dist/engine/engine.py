"""The engine: scheduler + runner behind `step()`, and the few sequence operations a reasoning
loop needs at a step boundary (commit is automatic; checkpoint, rollback, evict, probe, resume).

One `step()`:
  1. admit waiting sequences into free slots (one batched reset); with nothing waiting, move
     sequences from the highest slots into free lower ones, so the decode batch (a slot range)
     has no holes to compute;
  2. draw the first token of every sequence resumed with sampling (one batched draw);
  3. one forward per group (scheduler.py): new prompts together, equal-length forced chunks
     together, every decoding sequence together; after each forward, on the device and batched:
     the token choice of every row, and for the rows at a step boundary the commit (context
     update, temperature refresh, heat, checkpoint);
  4. one transfer of all those small results to the host;
  5. per sequence, plain Python: append the token, stop rules, boundary bookkeeping.
Sequences that need the caller are returned; the caller answers each (resume, probe, rollback,
release) before the next step. Resuming greedily costs no tensor op: the argmax is known.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .runner import ModelRunner, to_host
from .sampler import choose
from .scheduler import Scheduler
from .sequence import Checkpoint, Event, ProbeResult, ProbeState, Sequence, SequenceStatus
from .step_heats import Boundary, Retired, forget_after, settle
from .stopping import StopRule


RETIRED_BATCH = 256
"""Released sequences whose deferred heats wait for one computation (step_heats.Retired);
sooner when the engine has nothing else to do."""


@dataclass(slots=True)
class _Forward:
    """One group's forward and what was decided for it on the device."""

    group: list[Sequence]
    row_of: list[int]  # row in the batch of each sequence of the group
    logits: torch.Tensor
    tokens: torch.Tensor
    greedy: torch.Tensor
    log_prob: torch.Tensor | None
    committed: list[Sequence]  # at a boundary, heats computed now (runner.commit)
    heats: torch.Tensor | None
    snapshots: list
    logged: dict  # id(seq) -> snapshot: at a boundary, heat deferred (step_heats.py)


class Engine:
    def __init__(self, model, stop_rule: StopRule, *, num_slots: int, max_len: int | None = None,
                 slot_entries: int | None = None) -> None:
        limit = model.config.max_sequence_length
        self.max_len = min(max_len or limit, limit)  # positions per sequence (RoPE range)
        # live cache entries per sequence: fewer than its positions where eviction keeps it small
        self.slot_entries = min(slot_entries or self.max_len, self.max_len)
        self.stop_rule = stop_rule
        self.runner = ModelRunner(model, num_slots, self.slot_entries)
        self.scheduler = Scheduler(num_slots)
        self._events: list[Sequence] = []
        self._retired = Retired()  # released, heats deferred (step_heats.py)

    # -- the loop ---------------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        self.scheduler.add(seq)

    def has_work(self) -> bool:
        return self.scheduler.has_work() or bool(self._retired)

    def step(self) -> list[Sequence]:
        """Admit, feed every runnable sequence once, return the sequences that paused."""
        if len(self._retired) >= RETIRED_BATCH or not self.scheduler.has_work():
            self._retired.settle(self.runner)
        admitted = self.scheduler.admit()
        if admitted:
            self.runner.reset([s.slot for s in admitted])
            now = time.perf_counter()
            for seq in admitted:
                seq.admitted_at = now
        moves = self.scheduler.compact()
        if moves:
            self.runner.move([old for _, old in moves], [seq.slot for seq, _ in moves],
                             max(seq.num_cached for seq, _ in moves))
        self.runner.temperatures = any(s.commit_steps for s in self.scheduler.holding.values())
        self._draw_resumed()
        forwards = [self._forward(kind, rows, group) for kind, rows, group in self.scheduler.runnable()]
        self._decide(forwards)
        events, self._events = self._events, []
        if not (forwards or events) and self.has_work():
            raise RuntimeError("engine stalled: every slot holds a paused sequence nobody answered")
        return events

    def release(self, seq: Sequence) -> None:
        """The caller is done with a paused sequence: free its slot for the next one. Deferred
        heats are computed later, with other released sequences' (step_heats.Retired): its
        step_heats are complete once the engine has no work left, or after `step_heats(seq)`."""
        if seq.boundaries:
            self._retired.add(self.runner, seq)
        self.scheduler.release(seq)
        seq.event = None
        seq.logits = seq.boundary_checkpoint = None  # let go of device tensors
        seq.finished_at = time.perf_counter()

    def abort_all(self) -> None:
        """Drop every queued and held sequence (after an error, so the engine can be reused)."""
        self.scheduler.waiting.clear()
        self._retired.clear()
        for seq in list(self.scheduler.holding.values()):
            seq.boundaries = []  # dropped: nobody will read them
            self.release(seq)
        self._events.clear()

    # -- operations at a boundary (the sequence is paused) ----------------------------------
    def resume(self, seq: Sequence, temperature: float | None = None) -> None:
        """Continue from the boundary with the next step's first token. `temperature`
        overrides the sampling temperature until the next boundary (resampling a step)."""
        self._expect_boundary(seq)
        seq.step_temperature = temperature
        if self._temperature(seq) == 0 and seq.greedy_next is not None:
            self._take(seq, seq.greedy_next)
        else:  # drawn with the other resumed sequences at the next step
            seq.needs_draw = True
            seq.status, seq.event = SequenceStatus.RUNNING, None

    def checkpoint(self, seq: Sequence) -> Checkpoint:
        """The sequence's state at this boundary, for `rollback` (a backtrack target, a probe):
        the one taken with the boundary's commit, or a new one (after an eviction)."""
        self._expect_boundary(seq)
        if seq.boundary_checkpoint is None:
            seq.boundary_checkpoint = _checkpoint_of(seq, self.runner.snapshot(seq.slot))
        return seq.boundary_checkpoint

    def rollback(self, seq: Sequence, ckpt: Checkpoint) -> None:
        """Back to a checkpoint: cache slot, output and next-token logits exactly as they were.
        Counters are not rolled back: the discarded work was computed."""
        self.runner.rollback(seq.slot, ckpt.cache)
        forget_after(seq, ckpt.num_steps)
        del seq.output_ids[ckpt.num_output :]
        seq.logits, seq.greedy_next, seq.step_start = ckpt.logits, ckpt.greedy_next, ckpt.step_start
        seq.num_steps, seq.line_start = ckpt.num_steps, ckpt.line_start
        seq.num_cached, seq.num_positions = ckpt.num_cached, ckpt.num_positions
        seq.boundary_checkpoint = ckpt
        seq.feed, seq.needs_draw = [], False
        seq.status, seq.event = SequenceStatus.PAUSED, Event.BOUNDARY

    def temperatures(self, seq: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions [n], temperature [n], mean over layers) of the live entries, on the CPU."""
        settle(self.runner, [seq])  # the slot's context is the newest boundary's
        return self.runner.temperatures_of(seq.slot)

    def keep_scores(self, seq: Sequence, over_layers: str = "max") -> torch.Tensor:
        """[n] the live entries' temperature over layers (max or geometric mean), on the CPU:
        the budget's ranking."""
        settle(self.runner, [seq])
        return self.runner.keep_scores_of(seq.slot, over_layers)

    def evict(self, seq: Sequence, keep: torch.Tensor) -> int:
        """Drop live entries where keep [n] is False; they are never attended again."""
        self._expect_boundary(seq)
        settle(self.runner, [seq])  # the logged boundaries saw the entries as they were
        evicted = self.runner.evict(seq.slot, keep)
        seq.num_cached -= evicted
        seq.counters.kv_evicted += evicted
        if evicted:
            seq.boundary_checkpoint = None  # the cache changed: the next checkpoint is new
        return evicted

    def step_heats(self, seq: Sequence) -> list[float]:
        """The heat of each of the sequence's steps so far (the deferred ones computed now)."""
        if seq.status is SequenceStatus.FINISHED:
            self._retired.settle(self.runner)
        else:
            settle(self.runner, [seq])
        return list(seq.step_heats)

    def probe(self, seq: Sequence, forced_ids: list[int], max_tokens: int) -> None:
        """Trial answer: append forced_ids, greedy-decode up to max_tokens to the line end, then
        roll back. Decoded with the other sequences; the result comes as an Event.PROBED pause."""
        self._expect_boundary(seq)
        seq.probe = ProbeState(checkpoint=self.checkpoint(seq), max_tokens=max_tokens)
        if not self._fits(seq, len(forced_ids) + 1):
            self._finish_probe(seq, complete=False)  # no room left for an answer line
            return
        seq.counters.probe_tokens += len(forced_ids)
        seq.feed = list(forced_ids)
        seq.status, seq.event = SequenceStatus.RUNNING, None

    # -- the forwards of a step ---------------------------------------------------------------
    def _forward(self, kind: str, rows: list[Sequence | None], group: list[Sequence]) -> _Forward:
        slots, feeds = [s.slot if s else None for s in rows], [s.feed if s else [] for s in rows]
        starts, next_pos = [s.num_cached if s else 0 for s in rows], [s.num_positions if s else 0 for s in rows]
        if kind == "fresh" and any(s.prefill_budget for s in rows if s):
            logits, kept = self.runner.prefill_dropping(slots, feeds, [s.prefill_budget if s else None for s in rows])
            for seq, k in zip(rows, kept):
                if seq is not None:
                    seq.prefill_kept = k
        else:
            logits = self.runner.run(kind, slots, feeds, starts, next_pos)
        row_of = [i for i, s in enumerate(rows) if s is not None]
        with_log_prob = any(s.probe is not None for s in group)
        if any(s.probe is None and self._temperature(s) > 0 for s in group):
            choice = choose(logits, temperatures=[self._temperature(s) if s else 0.0 for s in rows],
                            top_ps=[s.sampling.top_p if s else 1.0 for s in rows],
                            seeds=[s.sampling.seed if s else 0 for s in rows],
                            draws=[s.num_draws if s else 0 for s in rows], with_log_prob=with_log_prob)
        else:  # every row greedy (the default): the per-row sampling lists are not needed
            choice = choose(logits, with_log_prob=with_log_prob)
        at_boundary = [s for s in group if s.commit_steps and self._ends_step(s)]
        committed = [s for s in at_boundary if not self._defers_heat(s)]
        heats, snapshots = None, []
        if committed:
            lengths, next_pos, in_step = self._boundary_of(committed)
            heats, snapshots = self.runner.commit([s.slot for s in committed], lengths, next_pos, in_step)
        return _Forward(group, row_of, logits, choice.tokens, choice.greedy, choice.greedy_log_prob, committed, heats,
                        snapshots, self._log_boundaries([s for s in at_boundary if self._defers_heat(s)]))

    def _defers_heat(self, seq: Sequence) -> bool:
        return self.runner.lazy_refresh and not seq.heat_at_boundary

    def _boundary_of(self, seqs: list[Sequence]) -> tuple[list[int], list[int], list[int]]:
        """(live entries, next position, entries of the step just finished) after this forward."""
        lengths = [s.num_cached + self._kept_of_feed(s) for s in seqs]
        next_pos = [s.num_positions + len(s.feed) for s in seqs]
        return lengths, next_pos, [min(n, p - s.step_start) for s, n, p in zip(seqs, lengths, next_pos)]

    def _log_boundaries(self, seqs: list[Sequence]) -> dict:
        """Boundaries whose heats wait (step_heats.py): log their contexts; id(seq) -> snapshot."""
        if not seqs:
            return {}
        settle(self.runner, [s for s in seqs if len(s.boundaries) == self.runner.cache.boundary_rows])  # full logs first
        lengths, next_pos, in_step = self._boundary_of(seqs)
        snapshots = self.runner.record([s.slot for s in seqs], lengths, next_pos, [len(s.boundaries) for s in seqs])
        for seq, n, m in zip(seqs, lengths, in_step):
            seq.boundaries.append(Boundary(step=0 if seq.is_prompt_pending else seq.num_steps + 1, seen=n, in_step=m))
        return {id(s): snap for s, snap in zip(seqs, snapshots)}

    def _decide(self, forwards: list[_Forward]) -> None:
        """One transfer for the whole step, then each sequence's decision in plain Python."""
        device_values = []
        for f in forwards:
            device_values += [f.tokens, f.greedy]
            device_values += [f.log_prob] if f.log_prob is not None else []
            device_values += [f.heats] if f.heats is not None else []
        values = iter(to_host(*device_values))
        for f in forwards:
            tokens, greedy = next(values), next(values)
            log_prob = next(values) if f.log_prob is not None else None
            heats = next(values) if f.heats is not None else []
            boundary = {id(s): (h, snap) for s, h, snap in zip(f.committed, heats, f.snapshots)}
            boundary.update({key: (None, snap) for key, snap in f.logged.items()})
            for seq, row in zip(f.group, f.row_of):
                self._after_forward(seq, int(tokens[row]), int(greedy[row]),
                                    log_prob[row] if log_prob is not None else 0.0,
                                    (f.logits, row), boundary.get(id(seq)))

    # -- after each forward, per sequence ----------------------------------------------------
    def _after_forward(self, seq: Sequence, token: int, greedy: int, log_prob: float,
                       logits: tuple[torch.Tensor, int], commit) -> None:
        """logits: (the forward's [B, V], this sequence's row), sliced only at a boundary."""
        fed = seq.feed
        was_prompt = seq.is_prompt_pending
        kept = self._kept_of_feed(seq)
        self._count_forward(seq, len(fed), kept)
        seq.num_cached += kept
        seq.num_positions += len(fed)
        seq.feed = []
        if seq.probe is not None:
            self._probe_next(seq, greedy, log_prob)
        elif was_prompt or fed[-1] in self.stop_rule.newline_ids:
            self._at_boundary(seq, logits[0][logits[1]], greedy, was_prompt, commit)
            if not seq.pause_at_boundaries:
                self._take(seq, token)
        else:
            self._take(seq, token)

    def _ends_step(self, seq: Sequence) -> bool:
        """Will this forward bring the sequence to a step boundary (prompt or newline fed)?"""
        return seq.probe is None and (seq.is_prompt_pending or seq.feed[-1] in self.stop_rule.newline_ids)

    def _kept_of_feed(self, seq: Sequence) -> int:
        """Entries the pending feed leaves in the cache: all of it, except a prompt with a
        prefill budget (its forward dropped the rest and said how many it kept)."""
        if seq.prefill_kept is None or not seq.is_prompt_pending:
            return len(seq.feed)
        return seq.prefill_kept

    def _count_forward(self, seq: Sequence, t: int, kept: int) -> None:
        # Query i of the chunk (1-based) attends the entries before the chunk plus i of its own.
        # A prompt that dropped tokens after its first `budget.layers` layers ran the other
        # layers on the `kept` tokens only.
        before = seq.num_cached
        layers = self.runner.num_layers
        full = seq.prefill_budget.layers if kept < t else layers
        seq.counters.attended_kv += full * (t * before + t * (t + 1) // 2)
        seq.counters.attended_kv += (layers - full) * (kept * before + kept * (kept + 1) // 2)
        seq.counters.dropped_token_layers += (layers - full) * (t - kept)
        seq.counters.kv_evicted += t - kept
        if self.runner.projections:  # A h computed (and cached) for each new entry
            seq.counters.temperature_cache_misses += full * t + (layers - full) * kept

    def _at_boundary(self, seq: Sequence, logits: torch.Tensor, greedy: int, was_prompt: bool, commit) -> None:
        if not was_prompt:
            seq.num_steps += 1
        seq.logits, seq.greedy_next, seq.step_temperature = logits, greedy, None
        seq.step_start = seq.num_positions  # the heat (computed with the commit) used the old one
        seq.boundary_checkpoint = None
        if commit is not None:  # the next token starts a new segment (the model's segment ids)
            heat, snapshot = commit
            seq.counters.temperature_cache_hits += seq.num_cached * self.runner.num_layers
            seq.heat = None if was_prompt else heat
            if seq.heat is not None:
                seq.step_heats.append(heat)
            seq.boundary_checkpoint = _checkpoint_of(seq, snapshot)
        if seq.pause_at_boundaries:
            self._pause(seq, Event.BOUNDARY)

    def _draw_resumed(self) -> None:
        """Sequences resumed with sampling draw their next token together, from kept logits."""
        waiting = [s for s in self.scheduler.holding.values() if s.needs_draw]
        if not waiting:
            return
        choice = choose(torch.stack([s.logits for s in waiting]),
                        temperatures=[self._temperature(s) for s in waiting],
                        top_ps=[s.sampling.top_p for s in waiting], seeds=[s.sampling.seed for s in waiting],
                        draws=[s.num_draws for s in waiting])
        (tokens,) = to_host(choice.tokens)
        for seq, token in zip(waiting, tokens):
            seq.needs_draw = False
            self._take(seq, int(token))

    def _temperature(self, seq: Sequence) -> float:
        return seq.sampling.temperature if seq.step_temperature is None else seq.step_temperature

    def _take(self, seq: Sequence, token: int) -> None:
        """Append a chosen token: stop, or feed it at the next step."""
        seq.output_ids.append(token)
        seq.num_draws += 1
        seq.counters.generated_tokens += 1
        reason = self._stop_reason(seq, token)
        if token in self.stop_rule.newline_ids:
            seq.line_start = len(seq.output_ids)
        if reason is not None:
            seq.stop_reason = reason
            self._pause(seq, Event.STOPPED)
        else:
            seq.feed = [token]
            seq.status, seq.event = SequenceStatus.RUNNING, None

    def _stop_reason(self, seq: Sequence, token: int) -> str | None:
        rule = self.stop_rule
        if token in rule.eos_ids:
            return "eos"
        if token in rule.newline_ids and rule.is_answer_line(seq.output_ids[seq.line_start :]):
            return "answer"
        if seq.counters.generated_tokens >= seq.max_new_tokens:
            return "max_tokens"
        if not self._fits(seq, 1):
            return "context"
        return None

    def _fits(self, seq: Sequence, n: int) -> bool:
        """Room for n more tokens: positions, and entries in the sequence's slot."""
        return seq.num_positions + n <= self.max_len and seq.num_cached + n <= self.slot_entries

    def _probe_next(self, seq: Sequence, token: int, log_prob: float) -> None:
        probe = seq.probe
        seq.counters.probe_tokens += 1
        probe.log_prob += max(log_prob, math.log(1e-45))
        if token in self.stop_rule.newline_ids or token in self.stop_rule.eos_ids:
            self._finish_probe(seq, complete=True)
            return
        probe.token_ids.append(token)
        if len(probe.token_ids) >= probe.max_tokens or not self._fits(seq, 1):
            self._finish_probe(seq, complete=False)
            return
        seq.feed = [token]

    def _finish_probe(self, seq: Sequence, complete: bool) -> None:
        probe, seq.probe = seq.probe, None
        self.rollback(seq, probe.checkpoint)
        confidence = math.exp(probe.log_prob) if complete else 0.0
        seq.probe_result = ProbeResult(tuple(probe.token_ids), confidence, complete)
        self._pause(seq, Event.PROBED)

    def _pause(self, seq: Sequence, event: Event) -> None:
        seq.status, seq.event = SequenceStatus.PAUSED, event
        self._events.append(seq)

    def _expect_boundary(self, seq: Sequence) -> None:
        if seq.status is not SequenceStatus.PAUSED or seq.event not in (Event.BOUNDARY, Event.PROBED):
            raise RuntimeError(f"{seq} is not paused at a step boundary")


def _checkpoint_of(seq: Sequence, snapshot) -> Checkpoint:
    """The sequence at its current boundary, with the slot's cache snapshot."""
    return Checkpoint(
        cache=snapshot, logits=seq.logits, greedy_next=seq.greedy_next, step_start=seq.step_start,
        num_output=len(seq.output_ids), num_steps=seq.num_steps, line_start=seq.line_start,
        num_cached=seq.num_cached, num_positions=seq.num_positions,
    )
