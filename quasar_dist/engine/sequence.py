"""Request state: one `Sequence` per prompt. Plain Python bookkeeping, read and written by the
engine; the only tensors it holds are its own sampling RNG and the next-token logits it must
sample from when it pauses at a step boundary.

Vocabulary: an *entry* is one token's keys/values/temperature in the cache (per layer); *live*
entries are those still attended; a *position* is a RoPE position, which keeps counting when
entries are evicted. A *boundary* is the moment right after the forward that fed the prompt or a
step's newline: the context has just been committed and no token of the next step exists yet.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

from quasar_dist.model.kv_cache import SlotSnapshot


class SequenceStatus(enum.Enum):
    WAITING = "waiting"  # queued, no cache slot yet
    RUNNING = "running"  # holds a slot and has tokens to feed at the next step
    PAUSED = "paused"  # holds a slot and waits for the caller (see Sequence.event)
    FINISHED = "finished"  # slot released


class Event(str, enum.Enum):
    """Why a sequence paused; the caller must answer every pause (resume, probe, release...)."""

    BOUNDARY = "boundary"  # at a step boundary (only when pause_at_boundaries)
    PROBED = "probed"  # a probe finished and was rolled back; see Sequence.probe_result
    STOPPED = "stopped"  # a stop condition hit; see Sequence.stop_reason


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.0
    """0 = greedy."""
    top_p: float = 1.0
    """Nucleus mass kept when sampling."""
    seed: int = 0
    """Keys this sequence's counter-based sampling noise (sampler.py; no RNG state anywhere)."""


@dataclass(slots=True)
class Counters:
    """Compute actually spent on one sequence (rolled-back work included: it was computed)."""

    prompt_tokens: int = 0
    generated_tokens: int = 0  # sampled tokens, rejected (backtracked) steps included; no probes
    probe_tokens: int = 0  # forced answer-mark tokens + greedy probe tokens
    attended_kv: int = 0  # sum over layers and fed tokens of the live entries each token attends
    temperature_cache_hits: int = 0  # temperatures refreshed from cached A h at commits
    temperature_cache_misses: int = 0  # A h computed (one per layer per fed token)
    kv_evicted: int = 0  # entries (per token, all layers at once) dropped by eviction
    dropped_token_layers: int = 0  # (prompt token, layer) pairs never computed (prefill dropping)


@dataclass(frozen=True, slots=True)
class PrefillBudget:
    """Keep only `keep` of the prompt's entries (or, with keep None, those whose temperature is
    at least `keep_above`), decided after its first `layers` layers, which are the only ones to
    compute the others (model/prefill_drop.py; `sinks` first and `recent` last entries always
    stay)."""

    keep: int | None
    layers: int
    sinks: int
    recent: int
    keep_above: float | None = None
    over_layers: str = "max"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    token_ids: tuple[int, ...]
    """Greedy tokens after the forced mark, line terminator excluded."""
    confidence: float
    """Product of their probabilities (terminator included); 0 if the line did not end."""
    complete: bool
    """The probe reached a newline or EOS within its token budget."""


@dataclass(slots=True)
class Checkpoint:
    """Everything `Engine.rollback` needs to put a sequence back exactly where it was."""

    cache: SlotSnapshot
    logits: torch.Tensor | None
    greedy_next: int | None
    step_start: int
    num_output: int
    num_steps: int
    line_start: int
    num_cached: int
    num_positions: int


@dataclass(slots=True)
class ProbeState:
    checkpoint: Checkpoint
    max_tokens: int
    token_ids: list[int] = field(default_factory=list)
    log_prob: float = 0.0


class Sequence:
    def __init__(
        self,
        seq_id: int,
        prompt_ids: list[int],
        sampling: SamplingParams = SamplingParams(),
        *,
        max_new_tokens: int,
        pause_at_boundaries: bool = False,
        commit_steps: bool = True,
        prefill_budget: PrefillBudget | None = None,
        heat_at_boundary: bool = True,
    ) -> None:
        if not prompt_ids:
            raise ValueError("a sequence needs at least one prompt token")
        self.seq_id = seq_id
        self.prompt_ids = list(prompt_ids)
        self.sampling = sampling
        self.max_new_tokens = max_new_tokens
        self.pause_at_boundaries = pause_at_boundaries
        self.commit_steps = commit_steps  # False only where temperatures are never read (CoT, guidance off)
        if prefill_budget is not None and not commit_steps:
            raise ValueError("a prefill budget ranks by temperature: it needs commit_steps")
        self.prefill_budget = prefill_budget
        # whether `heat` must be known at each boundary (the caller decides on it); if not, and
        # guidance is off, heats are computed later, many at once (step_heats.py)
        self.heat_at_boundary = heat_at_boundary
        self.prefill_kept: int | None = None  # entries the prompt's forward kept (prefill_budget)

        self.status = SequenceStatus.WAITING
        self.event: Event | None = None
        self.stop_reason: str | None = None  # eos | answer | max_tokens | context
        self.probe_result: ProbeResult | None = None
        self.slot: int | None = None

        self.output_ids: list[int] = []  # kept generated tokens (rolled-back ones removed)
        self.feed: list[int] = list(prompt_ids)  # tokens the next forward appends to the cache
        self.logits: torch.Tensor | None = None  # next-token logits kept at a boundary [V], on the device
        self.greedy_next: int | None = None  # their argmax (resuming greedily needs no tensor op)
        self.step_temperature: float | None = None  # sampling temperature override until the next boundary
        self.needs_draw = False  # resumed with sampling: draws from `logits` at the next step
        self.num_draws = 0  # draws so far, never rolled back: the counter of the sampling noise
        self.step_start = 0  # first position of the step in progress
        self.heat: float | None = None  # mean temperature of the step just finished (at a boundary; None if deferred)
        self.step_heats: list[float] = []  # the heat of each step so far (Engine.step_heats settles the deferred)
        self.boundaries: list = []  # step_heats.Boundary: logged boundaries whose heats are deferred
        self.boundary_checkpoint: Checkpoint | None = None  # taken with the commit; None after an eviction
        self.probe: ProbeState | None = None
        self.line_start = 0  # index in output_ids where the current line starts
        self.num_steps = 0  # newline-terminated lines fed after the prompt
        self.num_cached = 0  # live cache entries (CPU mirror of cache.length[slot])
        self.num_positions = 0  # positions used (CPU mirror of cache.next_pos[slot])
        self.counters = Counters(prompt_tokens=len(prompt_ids))
        self.admitted_at: float | None = None
        self.finished_at: float | None = None

    @property
    def is_prompt_pending(self) -> bool:
        return self.num_positions == 0

    def __repr__(self) -> str:
        return f"Sequence({self.seq_id}, {self.status.value}, slot={self.slot}, out={len(self.output_ids)})"
