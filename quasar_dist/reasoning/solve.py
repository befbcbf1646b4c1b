"""`solve_prompts`: the reasoning loop above `engine.step()` for a list of prompts.

Deterministic given (model, tokenizer, prompts, config): no global RNG, every task samples from
its own generator seeded from (config.seed, prompt). The distributed layer calls this in every
tensor-parallel rank with the same inputs, so every rank computes the same rows.
"""
from __future__ import annotations

from contextlib import contextmanager

from quasar_dist.engine import Engine, SamplingParams, Sequence, StopRule
from quasar_dist.engine.sequence import PrefillBudget
from quasar_dist.model.kv_cache import TemperatureKVCache

from .config import ReasoningConfig, check_budget_layer
from .cot import CotPolicy
from .gsot import GsotPolicy
from .signals import budget_count
from .task import Task, sequence_seed, task_row


def resolve_guidance(model, config: ReasoningConfig) -> str:
    """The run's guidance: the config's, else "off" for CoT and the model's own for GSoT."""
    if config.guidance is not None:
        return config.guidance
    return "off" if config.mode == "cot" else model.guidance


MAX_AUTO_SLOTS = 512  # more slots than this bought nothing measurable on 2 cores (docs/benchmarks.md)


def build_engine(model, tokenizer, config: ReasoningConfig, most_sequences: int | None = None) -> Engine:
    """One engine (one cache allocation) that can serve many solve_prompts calls; with
    `most_sequences` (a one-off call that knows its prompts), no more slots than it will fill:
    the cache is zeroed when allocated, and 512 slots take ~0.1 s of a 200-task call here."""
    slots = engine_slots(model, config)
    if most_sequences is not None:
        slots = max(1, min(slots, most_sequences))
    return Engine(model, StopRule.from_tokenizer(tokenizer), num_slots=slots, max_len=config.max_cache_len,
                  slot_entries=slot_entries(model.config, config))


def engine_slots(model, config: ReasoningConfig) -> int:
    """config.max_batch_size, or as many slots as cache_memory_mb holds (1 to MAX_AUTO_SLOTS)."""
    if config.max_batch_size is not None:
        return config.max_batch_size
    per_slot = TemperatureKVCache.bytes_per_slot(model, slot_entries(model.config, config))
    return int(max(1, min(MAX_AUTO_SLOTS, config.cache_memory_mb * 2**20 // per_slot)))


ANSWER_MARK_ROOM = 8  # entries a trial answer's forced mark ("####") may take, beyond probe_tokens


def slot_entries(model_config, config: ReasoningConfig) -> int:
    """Cache entries per slot (config.kv_slot_entries): given, or the positions per slot, or,
    when GSoT drops prompts to a budget inside prefill (kv_budget_layer with kv_budget), what
    the longest admissible prompt keeps plus max_new_tokens and a trial answer. The dropped
    tokens never reach the cache (prefill_drop.py), so nothing a run decodes needs more, and the
    same cache_memory_mb holds that many more slots."""
    positions = min(config.max_cache_len or model_config.max_sequence_length, model_config.max_sequence_length)
    if config.kv_slot_entries is not None:
        return min(config.kv_slot_entries, positions)
    if config.mode != "gsot" or config.kv_budget_layer is None or config.kv_budget is None:
        return positions
    kept = budget_count(positions, config.kv_budget, config.sink_tokens, config.recent_tokens)
    return min(positions, kept + config.max_new_tokens + config.probe_tokens + ANSWER_MARK_ROOM)


def solve_prompts(model, tokenizer, prompts: list[str], config: ReasoningConfig, *, engine: Engine | None = None) -> list[dict]:
    """One output row per prompt, in order (see task_row for the fields)."""
    guidance = resolve_guidance(model, config)
    engine = engine or build_engine(model, tokenizer, config, most_sequences=len(prompts))
    if engine.has_work():
        raise RuntimeError("engine is busy: one solve_prompts call at a time")
    commit_steps = config.mode == "gsot" or guidance != "off"  # otherwise temperatures are never read
    check_budget_layer(model.config, config)
    tasks = [_make_task(i, p, tokenizer, config, engine, commit_steps) for i, p in enumerate(prompts)]
    policy = (GsotPolicy if config.mode == "gsot" else CotPolicy)(engine, tokenizer, config)
    by_seq = {t.seq.seq_id: t for t in tasks if t.seq is not None}
    with _guidance(model, guidance):
        try:
            for task in submission_order(by_seq.values()):
                engine.add(task.seq)
            while engine.has_work():
                for seq in engine.step():
                    policy.handle(by_seq[seq.seq_id])
        finally:
            engine.abort_all()  # a no-op after a clean run; leaves a reusable engine after an error
    return [task_row(t, tokenizer) for t in tasks]


def submission_order(tasks) -> list[Task]:
    """Shortest prompt first (stable). Sequences decoding together then have similar lengths: the
    newest have longer prompts and the oldest have generated more, so the decode batch, which
    reads every row up to the longest live length, reads few dead entries (on 3,000 arith tasks
    the live share of the attention reads rose from 0.63 to 0.84; docs/engine.md), and the
    prompts prefilled together pad little. Rows come back in input order whatever the order."""
    return sorted(tasks, key=lambda task: len(task.seq.prompt_ids))


def _make_task(index: int, prompt, tokenizer, config: ReasoningConfig, engine: Engine, commit_steps: bool) -> Task:
    if not isinstance(prompt, str):
        return Task(index, None, error=f"prompt must be a string, got {type(prompt).__name__}")
    ids = tokenizer.encode_prompt(prompt)
    budget = prefill_budget(config, len(ids))
    error = _refusal(len(ids), budget, min(config.min_generation_room, config.max_new_tokens), engine)
    if error is not None:
        return Task(index, None, error=error, prompt_tokens=len(ids))
    sampling = SamplingParams(config.temperature, config.top_p, sequence_seed(config.seed, prompt))
    seq = Sequence(
        index, ids, sampling,
        max_new_tokens=config.max_new_tokens, pause_at_boundaries=True, commit_steps=commit_steps,
        prefill_budget=budget, heat_at_boundary=backtracks(config),
    )
    return Task(index, seq, prompt_tokens=len(ids))


def backtracks(config: ReasoningConfig) -> bool:
    """Whether GSoT decides on each step's heat at its boundary (else heats may come later)."""
    return config.mode == "gsot" and config.backtrack_below > 0 and config.max_retries > 0


def _refusal(n: int, budget: PrefillBudget | None, room: int, engine: Engine) -> str | None:
    """Why a prompt of n tokens cannot run (None if it can): it must leave `room` positions,
    and what it keeps in the cache (all of it, or a prefill budget's count) `room` entries."""
    if n + room > engine.max_len:
        return f"prompt has {n} tokens; the context holds {engine.max_len} and {room} are kept for generation"
    kept = n if budget is None or budget.keep is None else budget.keep
    if kept + room > engine.slot_entries:
        return (f"prompt keeps {kept} cache entries; a slot holds {engine.slot_entries} and {room} are kept "
                f"for generation (raise kv_slot_entries)")
    return None


def prefill_budget(config: ReasoningConfig, n: int) -> PrefillBudget | None:
    """GSoT with kv_budget_layer: the prompt keeps budget_count entries (or those warmer than
    kv_keep_above), decided in prefill."""
    if config.mode != "gsot" or config.kv_budget_layer is None:
        return None
    keep = None if config.kv_budget is None else budget_count(n, config.kv_budget, config.sink_tokens, config.recent_tokens)
    return PrefillBudget(keep=keep, layers=config.kv_budget_layer, sinks=config.sink_tokens, recent=config.recent_tokens,
                         keep_above=config.kv_keep_above, over_layers=config.kv_score)


@contextmanager
def _guidance(model, mode: str):
    """Run with `mode`, then give the model back as it came (it may be shared)."""
    before = model.guidance
    model.guidance = mode
    try:
        yield
    finally:
        model.guidance = before
