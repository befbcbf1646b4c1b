"""The engine: scheduler + runner behind `step()`, and the few sequence operations a reasoning
loop needs at a step boundary (commit is automatic; checkpoint, rollback, evict, probe, resume).

One `step()` feeds every runnable sequence once, in one batched forward per chunk length: all
single decoded tokens together (slots of different lengths), and equal-length chunks (forced
probe prefixes, prompts of one length) together. Each forward is followed by the token decision
for its sequence: sample the next token, pause at a step boundary, record a probe token, or
stop. Sequences that need the caller are returned; the caller answers each (resume, probe,
rollback, release) before the next step.
"""
from __future__ import annotations

import math
import time

import torch

from .runner import ModelRunner
from .sampler import greedy_token, sample_token
from .scheduler import Scheduler
from .sequence import Checkpoint, Event, ProbeResult, ProbeState, Sequence, SequenceStatus
from .stopping import StopRule


class Engine:
    def __init__(self, model, stop_rule: StopRule, *, num_slots: int, max_len: int | None = None) -> None:
        limit = model.config.max_sequence_length
        self.max_len = min(max_len or limit, limit)  # positions per sequence (RoPE range)
        self.stop_rule = stop_rule
        self.runner = ModelRunner(model, num_slots, self.max_len)
        self.scheduler = Scheduler(num_slots)
        self._events: list[Sequence] = []

    # -- the loop ---------------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        self.scheduler.add(seq)

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    def step(self) -> list[Sequence]:
        """Admit, feed every runnable sequence once, return the sequences that paused."""
        for seq in self.scheduler.admit():
            self.runner.reset(seq.slot)
            seq.admitted_at = time.perf_counter()
        groups = self.scheduler.runnable()
        for group in groups:
            logits = self.runner.forward([s.slot for s in group], [s.feed for s in group])
            for seq, row in zip(group, logits):
                self._after_forward(seq, row)
        events, self._events = self._events, []
        if not (groups or events) and self.has_work():
            raise RuntimeError("engine stalled: every slot holds a paused sequence nobody answered")
        return events

    def release(self, seq: Sequence) -> None:
        """The caller is done with a paused sequence: free its slot for the next one."""
        self.scheduler.release(seq)
        seq.event = None
        seq.finished_at = time.perf_counter()

    def abort_all(self) -> None:
        """Drop every queued and held sequence (after an error, so the engine can be reused)."""
        self.scheduler.waiting.clear()
        for seq in list(self.scheduler.holding.values()):
            self.release(seq)
        self._events.clear()

    # -- operations at a boundary (the sequence is paused) ----------------------------------
    def resume(self, seq: Sequence, temperature: float | None = None) -> None:
        """Continue from the boundary: sample the next step's first token. `temperature`
        overrides the sampling temperature until the next boundary (resampling a step)."""
        self._expect_boundary(seq)
        seq.step_temperature = temperature
        self._sample_next(seq, seq.logits)

    def checkpoint(self, seq: Sequence) -> Checkpoint:
        """The sequence's state at this boundary, for `rollback` (a backtrack target, a probe)."""
        self._expect_boundary(seq)
        return Checkpoint(
            cache=self.runner.snapshot(seq.slot),
            logits=seq.logits,
            num_output=len(seq.output_ids),
            num_steps=seq.num_steps,
            line_start=seq.line_start,
            num_cached=seq.num_cached,
            num_positions=seq.num_positions,
        )

    def rollback(self, seq: Sequence, ckpt: Checkpoint) -> None:
        """Back to a checkpoint: cache slot, output and next-token logits exactly as they were.
        Counters are not rolled back: the discarded work was computed."""
        self.runner.rollback(seq.slot, ckpt.cache)
        del seq.output_ids[ckpt.num_output :]
        seq.logits = ckpt.logits
        seq.num_steps, seq.line_start = ckpt.num_steps, ckpt.line_start
        seq.num_cached, seq.num_positions = ckpt.num_cached, ckpt.num_positions
        seq.feed = []
        seq.status, seq.event = SequenceStatus.PAUSED, Event.BOUNDARY

    def temperatures(self, seq: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions [n], temperature [n], mean over layers) of the live entries, on the CPU."""
        return self.runner.temperatures(seq.slot)

    def evict(self, seq: Sequence, keep: torch.Tensor) -> int:
        """Drop live entries where keep [n] is False; they are never attended again."""
        self._expect_boundary(seq)
        evicted = self.runner.evict(seq.slot, keep)
        seq.num_cached -= evicted
        seq.counters.kv_evicted += evicted
        return evicted

    def probe(self, seq: Sequence, forced_ids: list[int], max_tokens: int) -> None:
        """Trial answer: append forced_ids, greedy-decode up to max_tokens to the line end, then
        roll back. Decoded with the other sequences; the result comes as an Event.PROBED pause."""
        self._expect_boundary(seq)
        seq.probe = ProbeState(checkpoint=self.checkpoint(seq), max_tokens=max_tokens)
        if seq.num_positions + len(forced_ids) + 1 > self.max_len:
            self._finish_probe(seq, complete=False)  # no room left for an answer line
            return
        seq.counters.probe_tokens += len(forced_ids)
        seq.feed = list(forced_ids)
        seq.status, seq.event = SequenceStatus.RUNNING, None

    # -- after each forward -----------------------------------------------------------------
    def _after_forward(self, seq: Sequence, logits: torch.Tensor) -> None:
        fed = seq.feed
        was_prompt = seq.is_prompt_pending
        self._count_forward(seq, len(fed))
        seq.num_cached += len(fed)
        seq.num_positions += len(fed)
        seq.feed = []
        if seq.probe is not None:
            self._probe_next(seq, logits)
        elif was_prompt or fed[-1] in self.stop_rule.newline_ids:
            self._at_boundary(seq, logits, was_prompt)
        else:
            self._sample_next(seq, logits)

    def _count_forward(self, seq: Sequence, t: int) -> None:
        # Query i of the chunk (1-based) attends the entries before the chunk plus i of its own.
        before = seq.num_cached
        layers = self.runner.num_layers
        seq.counters.attended_kv += layers * (t * before + t * (t + 1) // 2)
        seq.counters.temperature_cache_misses += layers * t

    def _at_boundary(self, seq: Sequence, logits: torch.Tensor, was_prompt: bool) -> None:
        if not was_prompt:
            seq.num_steps += 1
        if seq.commit_steps:  # the next token starts a new segment (the model's segment ids)
            seq.counters.temperature_cache_hits += self.runner.commit(seq.slot)
        seq.logits = logits
        seq.step_temperature = None
        if seq.pause_at_boundaries:
            self._pause(seq, Event.BOUNDARY)
        else:
            self._sample_next(seq, logits)

    def _sample_next(self, seq: Sequence, logits: torch.Tensor) -> None:
        params = seq.sampling
        temperature = params.temperature if seq.step_temperature is None else seq.step_temperature
        token = sample_token(logits, temperature, params.top_p, seq.generator)
        seq.output_ids.append(token)
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
        if seq.num_positions + 1 > self.max_len:
            return "context"
        return None

    def _probe_next(self, seq: Sequence, logits: torch.Tensor) -> None:
        probe = seq.probe
        token, prob = greedy_token(logits)
        seq.counters.probe_tokens += 1
        probe.log_prob += math.log(max(prob, 1e-45))
        if token in self.stop_rule.newline_ids or token in self.stop_rule.eos_ids:
            self._finish_probe(seq, complete=True)
            return
        probe.token_ids.append(token)
        if len(probe.token_ids) >= probe.max_tokens or seq.num_positions + 1 > self.max_len:
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
