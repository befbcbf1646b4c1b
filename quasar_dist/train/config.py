"""Training recipe: a typed config filled from configs/train/*.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(kw_only=True, slots=True)
class ModelShape:
    hidden_size: int = 128
    """Model width."""
    num_layers: int = 4
    """Decoder layers."""
    num_heads: int = 4
    """Query heads."""
    num_kv_heads: int = 2
    """Key/value heads."""
    intermediate_size: int = 384
    """SwiGLU width."""
    ttm_dim: int = 32
    """TTM projection width r."""
    tau_max: float = 2.0
    """Temperature upper bound (2 makes the initial TTM the identity)."""
    max_position_embeddings: int = 256
    """Longest sequence."""
    vocab_size: int = 512
    """BPE vocabulary size trained on the task texts."""
    ttm_context: Literal["last", "mean"] = "last"
    """The TTM's step context (ModelConfig.ttm_context)."""
    ttm_hops: int = 0
    """Hops of the TTM's chain context (ModelConfig.ttm_hops; 0: one query)."""


@dataclass(kw_only=True, slots=True)
class TrainConfig:
    output_dir: str = "runs/tiny"
    """Where checkpoints, curves and the final model folder go."""
    ship_to: str | None = None
    """Also copy the final model folder here (e.g. quasar_dist/assets/tiny)."""
    kinds: list[str] = field(default_factory=lambda: ["arith", "logic"])
    """Task kinds trained on (equal shares)."""
    train_tasks_per_kind: int = 100_000
    """Training problems per kind (train split)."""
    val_tasks_per_kind: int = 100
    """Validation problems per kind for accuracy during training."""
    data_seed: int = 0
    """Seed of the training-data generator."""
    seed: int = 0
    """Seed of model init, shuffling and guidance dropout."""
    model: ModelShape = field(default_factory=ModelShape)
    """Model shape (with `init_from`, only max_position_embeddings and ttm_context are used)."""
    init_from: str | None = None
    """A model folder or shipped name whose decoder weights and tokenizer start the run (its
    TTM starts afresh, as the identity); None trains from scratch with a new tokenizer."""
    freeze_decoder: bool = False
    """With init_from: train the TTM only (the decoder's weights stay those of init_from)."""
    keep_ttm: bool = False
    """With init_from: keep its TTM (weights and shape: model.ttm_* are then unused) instead of
    starting a fresh one; e.g. to train the decoder under the decisions of a TTM already trained."""
    prefill_drop_layer: int | None = None
    """Train the decoder under prefill dropping (Algorithm 1) as GSoT runs it: in a share
    (`prefill_drop_share`) of the batches, the prompt tokens colder than `prefill_keep_above`
    (max over layers 0..this one, step 1's context; the model's own temperatures) are hidden from
    the layers from this one on and from every step (losses.PrefillDropInTraining); None: never."""
    prefill_keep_above: float = 1.0
    """Temperature threshold of `prefill_drop_layer` (ReasoningConfig.kv_keep_above)."""
    prefill_drop_share: float = 0.5
    """Share of batches trained under the drop (the others with the full prompt, for CoT)."""
    adapter_of: str | None = None
    """Train a TTM adapter for this base (a model folder or shipped name): the base stays frozen,
    only a fresh TTM (model.ttm_dim / tau_max / ttm_context) learns, by self-distillation on the
    base's own continuations of `prompts`; writes OUTPUT/adapter (train/adapter.py)."""
    prompts: str | None = None
    """Parquet file of prompts for an adapter (column `prompt_col`); null = the recipe's own tasks."""
    prompt_col: str = "prompt"
    """Prompt column of `prompts`."""
    continuation_tokens: int = 128
    """Tokens the base writes after each prompt for self-distillation."""
    distractors: list[int] = field(default_factory=list)
    """[lo, hi]: a `distractor_share` of the training tasks gets lo..hi distractor sentences
    (uniform; data/distractors.py); [] trains on today's tasks only."""
    distractor_share: float = 0.5
    """Share of training tasks drawn with distractors when `distractors` is set."""
    val_distractors: int = 20
    """Distractor count of the extra validation sets (accuracy and temperature AUROC)."""
    guidance: Literal["scale", "bias", "off"] = "bias"
    """Guided-attention form trained (and the checkpoint's default). "off": attention never
    reads the temperatures, which are trained as a ranking only (eviction, prefill dropping), by
    the relevance term on the decoder's fixed features (stage 4b, docs/training.md)."""
    guidance_off_fraction: float = 0.3
    """Share of batches trained with guidance off, so the same weights also serve the CoT baseline."""
    batch_size: int = 64
    """Sequences per optimizer step (per rank)."""
    max_steps: int = 3000
    """Optimizer steps."""
    max_minutes: float = 55.0
    """Wall-clock budget; training stops (and saves) when it is spent."""
    lr: float = 3e-3
    """Peak learning rate (AdamW) of the decoder."""
    ttm_lr: float = 1e-3
    """Learning rate of the TTM parameters (paper eq. 70-71: their own rate)."""
    warmup_steps: int = 100
    """Linear warm-up, then the lr_schedule."""
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    """After the warm-up: cosine decay to 10% (by step or time, whichever is further), or the
    peak rate to the end (for a run meant to be resumed until a metric moves: docs/training.md,
    stage 4, where the rise came late)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not on norms, biases or TTM)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (DeepSpeed)."""
    ttm_grad_clip: float = 0.5
    """Separate gradient-norm clip of the TTM parameters (paper eq. 71)."""
    lambda_anti_collapse: float = 0.1
    """Weight of mean((tau/tau_max - 0.5)^2), the paper's anti-collapse term fitted to tau_max."""
    lambda_sparsity: float = 0.02
    """Weight of mean(tau/tau_max), the budget that pushes temperatures down; LM loss keeps the useful tokens warm."""
    lambda_relevance: float = 0.0
    """Weight of the supervised importance term (train/losses.py relevance_loss): every layer's
    keep probability tau/tau_max against the `relevant_spans` labels of the distractor tasks
    (binary cross-entropy, prompt keys under every step's context); 0 leaves it out."""
    relevance_first_step_only: bool = False
    """The relevance term under step 1's context only (losses.relevance_loss)."""
    keep_target: float | None = None
    """Eviction in the loop (train/losses.py RelaxedEviction): the share of decided prompt
    entries the budget loss lets the steps keep; None trains with the paper's terms only."""
    evict_from_step: int = 0
    """Eviction in the loop starts at this step (before it: one forward, e.g. while a supervised
    TTM learns what to keep, so that the decisions the decoder then trains under make sense)."""
    keep_ramp_steps: int = 1000
    """Steps over which the budget tightens from 1.0 to keep_target."""
    lambda_budget: float = 1.0
    """Weight of the budget hinge max(0, kept - target)."""
    evict_gamma: float = 0.5
    """Temperature of the relaxed (logistic-noise) keep decision; lower is closer to hard."""
    protect_sinks: int = 1
    """First prompt tokens never decided (attention sinks; the BOS token)."""
    protect_window: int = 8
    """Last prompt tokens never decided (the recent window: the question's end)."""
    zero_stage: int = 0
    """DeepSpeed ZeRO stage (0, 1 or 2)."""
    eval_every: int = 250
    """Steps between validation accuracy checks."""
    checkpoint_every: int = 250
    """Steps between resumable checkpoints."""
    threads: int = 0
    """torch threads (0: leave torch's default)."""

    def __post_init__(self) -> None:
        if self.zero_stage not in (0, 1, 2):
            raise ValueError(f"zero_stage must be 0, 1 or 2, got {self.zero_stage}")
        if self.distractors and (len(self.distractors) != 2 or not 0 <= self.distractors[0] <= self.distractors[1]):
            raise ValueError(f"distractors must be [lo, hi] with 0 <= lo <= hi, got {self.distractors}")
        if self.freeze_decoder and not self.init_from:
            raise ValueError("freeze_decoder needs init_from (the decoder to keep)")
        if self.adapter_of and self.init_from:
            raise ValueError("set adapter_of (train a TTM for a frozen base) or init_from (continue a model), not both")
        if self.keep_target is not None and not 0.0 < self.keep_target <= 1.0:
            raise ValueError(f"keep_target must be in (0, 1], got {self.keep_target}")
        if self.keep_ttm and not self.init_from:
            raise ValueError("keep_ttm needs init_from (the model whose TTM to keep)")
        if self.prefill_drop_layer is not None and self.prefill_drop_layer < 1:
            raise ValueError(f"prefill_drop_layer must be >= 1 (layer 0 sees the whole prompt), got {self.prefill_drop_layer}")
        if not 0.0 <= self.prefill_drop_share <= 1.0:
            raise ValueError("prefill_drop_share must be in [0, 1]")
        if self.lambda_relevance < 0:
            raise ValueError(f"lambda_relevance must be >= 0, got {self.lambda_relevance}")
        if self.lambda_relevance and self.adapter_of:
            raise ValueError("lambda_relevance needs labelled tasks; an adapter trains on unlabelled prompts")
        if self.guidance == "off" and not self.lambda_relevance:
            raise ValueError("guidance off trains the TTM by its relevance term alone: set lambda_relevance > 0")
        if not 0.0 <= self.guidance_off_fraction <= 1.0:
            raise ValueError("guidance_off_fraction must be in [0, 1]")
        for kind in self.kinds:
            if kind not in ("arith", "logic"):
                raise ValueError(f"unknown task kind {kind!r} in kinds")
