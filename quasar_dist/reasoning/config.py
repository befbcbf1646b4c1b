"""Every knob of the reasoning loop, in one typed config (YAML fills it via
`quasar_dist.util.typed_config.from_dict` / `load_config`).

Temperatures live in (0, tau_max) with tau_max = 2 and 1 = neutral (an untrained TTM gives 1
everywhere), so the thresholds below are on that scale. The defaults are first choices, to be
measured on the shipped model (docs/benchmarks.md): its trial probes are over-confident and its
temperatures nearly flat, so early stopping (trial probes, the temperature-convergence test) and eviction cost accuracy;
all three are off by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from quasar_dist.model.config import GUIDANCE_MODES, check_drop_layers

MODES = ("gsot", "cot")


@dataclass(kw_only=True, slots=True)
class ReasoningConfig:
    mode: Literal["gsot", "cot"] = "gsot"
    """gsot: the guided loop (backtrack, evict, probe, converge); cot: plain decoding to #### / EOS / a limit."""
    guidance: Literal["scale", "bias", "off"] | None = None
    """Guided-attention form for the run; None = the loaded model's (its checkpoint's default) for gsot, "off" for cot."""
    max_steps: int = 16
    """Most reasoning steps (lines) per task; reaching it stops with stop_reason "max_steps"."""
    max_new_tokens: int = 256
    """Most sampled tokens per task, rejected steps included, probes excluded ("max_tokens")."""
    backtrack_below: float = 0.5
    """A step whose heat (mean temperature of its tokens) is below this is rolled back and resampled."""
    max_retries: int = 2
    """Resamplings per step; after that the last attempt is kept whatever its heat."""
    retry_temperature: float = 0.7
    """Sampling temperature of a resampled step (> 0, so a retry can differ from a greedy first try)."""
    evict_below: float = 0.0
    """At each boundary, live entries with a temperature below this leave the KV cache (0 = never)."""
    kv_budget: float | None = None
    """After prefill, keep only this many of the prompt's entries, the warmest by temperature
    (sinks and recent entries always stay): a share of the prompt if <= 1, a count if > 1. None
    keeps them all. The prompt is where long inputs spend their cache (docs/gsot.md)."""
    kv_keep_above: float | None = None
    """Instead of a fixed budget: after prefill keep the prompt entries whose temperature
    (combined over layers by kv_score) is at least this, and the sinks and recent entries; the rest leave. The share
    kept then follows the prompt: all of a short task that needs all of it, little of a long
    one that is mostly distractors. Exclusive with kv_budget."""
    kv_score: Literal["max", "mean"] = "max"
    """How an entry's temperatures in the layers combine into the one score ttm eviction ranks
    and thresholds: the max (an entry any layer wants stays; what eviction-in-the-loop training
    decides by) or the geometric mean (the mean log temperature). Inside prefill, over the
    layers computed so far."""
    kv_budget_layer: int | None = None
    """With kv_budget and the ttm evictor: decide the budget inside prefill, after this many
    layers (the paper's Algorithm 1, integrated token processing), from the temperatures of
    layers 0..kv_budget_layer: the later layers compute only the kept prompt tokens, which is
    where a long prompt's compute goes (model/prefill_drop.py). None decides after prefill,
    from every layer's temperature."""
    kv_evictor: Literal["ttm", "streaming", "random", "snapkv", "h2o", "tova"] = "ttm"
    """How kv_budget ranks the prompt's entries: by temperature, or a baseline (reasoning/evictors.py)."""
    sink_tokens: int = 4
    """The first live entries, never evicted (attention sinks, StreamingLLM)."""
    recent_tokens: int = 16
    """The last live entries, never evicted (the step just written)."""
    answer_confidence: float = 1.0
    """Stop ("converged") when a trial answer's probability (product over its tokens) reaches this; 1.0 turns trial probes off."""
    probe_tokens: int = 8
    """Most greedy tokens a trial answer may take after the forced "####" before the line ends."""
    epsilon: float = 0.0
    """Stop ("converged") when max |tau_s - tau_{s-1}| over still-live entries is below this (0 = never).
    Off by default: on the shipped model 1e-3 stops 54 of 64 logic chains after two steps (20% right
    instead of 100%) and 3e-4 or less never fires (docs/benchmarks.md)."""
    temperature: float = 0.0
    """Sampling temperature of generation; 0 = greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass (used when temperature > 0)."""
    seed: int = 0
    """Seeds every task's own generator (mixed with its prompt text): same inputs, same outputs."""
    max_batch_size: int | None = None
    """Engine cache slots: tasks decoded together (continuous batching). None = as many as
    cache_memory_mb holds, at most MAX_AUTO_SLOTS: hundreds fill a CPU, since a decode step is then
    a few large matmuls instead of many small ones (docs/benchmarks.md)."""
    cache_memory_mb: float = 1024.0
    """Memory for the KV + temperature cache when max_batch_size is None (per replica rank)."""
    max_cache_len: int | None = None
    """Positions per slot (prompt + generation + probe); None = the model's max_sequence_length."""
    kv_slot_entries: int | None = None
    """Cache entries per slot (what a sequence may hold live at once; its positions can run
    further). None = automatic: max_cache_len, except with a prefill budget (kv_budget_layer and
    kv_budget), where a prompt keeps only its budget: then the largest kept prompt plus
    max_new_tokens and a trial answer, so the same cache_memory_mb holds more slots."""
    min_generation_room: int = 16
    """A prompt is refused (error row) unless it leaves min(this, max_new_tokens) positions free."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.guidance is not None and self.guidance not in GUIDANCE_MODES:
            raise ValueError(f"guidance must be one of {', '.join(GUIDANCE_MODES)} or null, got {self.guidance!r}")
        _at_least(self, 1, "max_steps", "max_new_tokens", "probe_tokens", "min_generation_room")
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1 or null, got {self.max_batch_size}")
        if not self.cache_memory_mb > 0:
            raise ValueError(f"cache_memory_mb must be > 0, got {self.cache_memory_mb}")
        _at_least(self, 0, "max_retries", "sink_tokens", "recent_tokens", "backtrack_below", "evict_below",
                  "epsilon", "temperature")
        if self.kv_budget is not None and not self.kv_budget > 0:
            raise ValueError(f"kv_budget must be > 0 (a share <= 1 or a count) or null, got {self.kv_budget}")
        if self.kv_score not in ("max", "mean"):
            raise ValueError(f"kv_score must be max or mean, got {self.kv_score!r}")
        if self.kv_keep_above is not None:
            if self.kv_budget is not None:
                raise ValueError("set kv_budget (a fixed share) or kv_keep_above (a temperature), not both")
            if not self.kv_keep_above > 0:
                raise ValueError(f"kv_keep_above must be > 0 or null, got {self.kv_keep_above}")
            if self.kv_evictor != "ttm":
                raise ValueError("kv_keep_above is a temperature: it needs kv_evictor 'ttm'")
        if self.kv_budget_layer is not None:
            if (self.kv_budget is None and self.kv_keep_above is None) or self.kv_evictor != "ttm":
                raise ValueError("kv_budget_layer needs kv_budget or kv_keep_above, and kv_evictor 'ttm' (it drops by temperature)")
            if self.kv_budget_layer < 1:
                raise ValueError(f"kv_budget_layer must be >= 1 or null, got {self.kv_budget_layer}")
        if not 0.0 < self.answer_confidence <= 1.0:
            raise ValueError(f"answer_confidence must be in (0, 1], got {self.answer_confidence}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.retry_temperature > 0.0:
            raise ValueError(f"retry_temperature must be > 0, got {self.retry_temperature}")
        if self.max_cache_len is not None and self.max_cache_len < 2:
            raise ValueError(f"max_cache_len must be >= 2 or null, got {self.max_cache_len}")
        if self.kv_slot_entries is not None and self.kv_slot_entries < 2:
            raise ValueError(f"kv_slot_entries must be >= 2 or null, got {self.kv_slot_entries}")


def _at_least(cfg: ReasoningConfig, low: float, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")


def check_budget_layer(model_config, config: ReasoningConfig) -> None:
    """kv_budget_layer must leave layers to skip, and the context must be the last token's
    (model_config: the model's ModelConfig; the job checks it from config.json alone)."""
    if config.kv_budget_layer is not None and config.mode == "gsot":
        check_drop_layers(model_config, config.kv_budget_layer)
