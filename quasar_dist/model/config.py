"""Model shape and TTM settings, read from / written to a Hugging Face `config.json`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GUIDANCE_MODES = ("scale", "bias", "off")
TTM_CONTEXTS = ("last", "mean")
HF_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}


class ModelLoadError(ValueError):
    """A model folder or config that cannot be loaded; the message is one line."""


@dataclass(kw_only=True, slots=True)
class ModelConfig:
    architecture: Literal["llama", "qwen2", "mistral"] = "llama"
    """Checkpoint family; all three share one decoder (Qwen2 adds q/k/v biases)."""
    vocab_size: int
    """Number of token ids."""
    hidden_size: int
    """Model width d_model."""
    intermediate_size: int
    """SwiGLU MLP width."""
    num_layers: int
    """Decoder layers."""
    num_heads: int
    """Query heads."""
    num_kv_heads: int
    """Key/value heads (grouped-query attention when < num_heads)."""
    head_dim: int = 0
    """Per-head width; 0 means hidden_size // num_heads."""
    rope_theta: float = 10000.0
    """RoPE base."""
    rms_norm_eps: float = 1e-6
    """RMSNorm epsilon."""
    max_position_embeddings: int = 2048
    """Longest sequence (prompt + generation) the model accepts."""
    tie_word_embeddings: bool = False
    """lm_head shares the embedding matrix."""
    attention_bias: bool = False
    """Bias on q/k/v projections (always true for Qwen2)."""
    sliding_window: int | None = None
    """Mistral's window; sequences longer than it are refused (no sliding-window kernel)."""
    bos_token_id: int | None = None
    """Prepended to every prompt when set."""
    eos_token_ids: list[int] = field(default_factory=list)
    """Generation stops at any of these."""
    pad_token_id: int | None = None
    """Padding id (never attended)."""
    ttm_dim: int = 64
    """Width r of the token temperature projections A h_i and B c."""
    tau_max: float = 2.0
    """Upper bound of temperatures; with w = b = 0 tau = tau_max / 2, so 2.0 makes TTM the identity."""
    guidance: Literal["scale", "bias", "off"] = "bias"
    """Default guided-attention form of this checkpoint (load_model may override)."""
    ttm_context: Literal["last", "mean"] = "last"
    """The context c of step s: the layer input of the last token before s ("last", which has
    read the question), or the mean layer input of all tokens before s ("mean", the first
    design; checkpoints written before this field existed use it). docs/model.md."""
    ttm_hops: int = 0
    """Hops of the TTM's chain context (model/ttm.py): 0 is one query matching tokens against
    the context; H > 0 follows H lookups through the entries before a step (docs/model.md)."""
    gsot_defaults: dict = field(default_factory=dict)
    """GSoT settings calibrated for this checkpoint on validation tasks (bench/calibrate.py
    --write-defaults): `quasar run`, sweeps and processors in GSoT mode start from them; the
    keys a run sets win (batch/model_check.py model_gsot). Empty: ReasoningConfig's defaults."""

    def __post_init__(self) -> None:
        if self.head_dim == 0:
            self.head_dim = self.hidden_size // self.num_heads
        if self.ttm_context not in TTM_CONTEXTS:
            raise ValueError(f"ttm_context must be one of {', '.join(TTM_CONTEXTS)}, got {self.ttm_context!r}")
        if not 0 <= self.ttm_hops <= 16:
            raise ValueError(f"ttm_hops must be in 0..16, got {self.ttm_hops}")
        if not isinstance(self.gsot_defaults, dict):
            raise ValueError(f"quasar.gsot_defaults must be a mapping, got {type(self.gsot_defaults).__name__}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not divisible by num_kv_heads {self.num_kv_heads}")

    @property
    def max_sequence_length(self) -> int:
        if self.sliding_window:
            return min(self.max_position_embeddings, self.sliding_window)
        return self.max_position_embeddings

    @classmethod
    def from_hf_dict(cls, d: dict, source: str = "config.json") -> "ModelConfig":
        model_type = d.get("model_type")
        if model_type not in HF_ARCHITECTURES:
            known = ", ".join(HF_ARCHITECTURES)
            raise ModelLoadError(f"{source}: unsupported architecture {model_type!r} (supported: {known})")
        rope_theta = _rope_theta(d, source)
        try:
            eos = d.get("eos_token_id")
            eos_ids = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
            qd = d.get("quasar", {})
            window = d.get("sliding_window") if model_type == "mistral" or d.get("use_sliding_window") else None
            return cls(
                architecture=model_type,
                vocab_size=int(d["vocab_size"]),
                hidden_size=int(d["hidden_size"]),
                intermediate_size=int(d["intermediate_size"]),
                num_layers=int(d["num_hidden_layers"]),
                num_heads=int(d["num_attention_heads"]),
                num_kv_heads=int(d.get("num_key_value_heads") or d["num_attention_heads"]),
                head_dim=int(d.get("head_dim") or 0),
                rope_theta=rope_theta,
                rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                attention_bias=model_type == "qwen2" or bool(d.get("attention_bias", False)),
                sliding_window=int(window) if window else None,
                bos_token_id=d.get("bos_token_id"),
                eos_token_ids=eos_ids,
                pad_token_id=d.get("pad_token_id"),
                ttm_dim=int(qd.get("ttm_dim", 64)),
                tau_max=float(qd.get("tau_max", 2.0)),
                guidance=qd.get("guidance", "bias"),
                # a "quasar" section without the key was written by the first design (mean)
                ttm_context=qd.get("ttm_context", "mean" if qd else "last"),
                ttm_hops=int(qd.get("ttm_hops", 0)),
                gsot_defaults=qd.get("gsot_defaults", {}),
            )
        except KeyError as exc:
            raise ModelLoadError(f"{source}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"{source}: {exc}") from None

    def to_hf_dict(self) -> dict:
        """A config.json that transformers also reads (the TTM fields sit under "quasar")."""
        d = {
            "architectures": [HF_ARCHITECTURES[self.architecture]],
            "model_type": self.architecture,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.attention_bias,
            "hidden_act": "silu",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_ids[0] if len(self.eos_token_ids) == 1 else self.eos_token_ids,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": "float32",
            "quasar": {"ttm_dim": self.ttm_dim, "tau_max": self.tau_max, "guidance": self.guidance,
                       "ttm_context": self.ttm_context, **({"ttm_hops": self.ttm_hops} if self.ttm_hops else {}),
                       **({"gsot_defaults": dict(self.gsot_defaults)} if self.gsot_defaults else {})},
        }
        if self.sliding_window:
            d["sliding_window"] = self.sliding_window
        return d


def _rope_theta(d: dict, source: str) -> float:
    """The RoPE base. transformers < 5 writes `rope_theta` (and `rope_scaling`); 5 writes
    `rope_parameters: {rope_type, rope_theta, ...}`. Only plain RoPE is supported: any scaling
    type is refused rather than silently computed wrong."""
    params = d.get("rope_parameters") or {}
    scaling = d.get("rope_scaling") or {}
    for found in (params, scaling):
        kind = found.get("rope_type", found.get("type", "default"))
        if kind != "default":
            raise ModelLoadError(f"{source}: RoPE type {kind!r} is not supported (plain RoPE only)")
    theta = params.get("rope_theta", d.get("rope_theta", 10000.0))
    return float(theta)


def check_drop_layers(config, layers: int) -> None:
    """Dropping after `layers` layers must leave layers to skip, and the TTM context must be the
    last token's (a mean context would count the dropped tokens). config: the ModelConfig."""
    if not 1 <= layers < config.num_layers:
        raise ValueError(f"kv_budget_layer must be >= 1 and below the model's {config.num_layers} layers, got {layers}")
    if config.ttm_context != "last":
        raise ValueError("kv_budget_layer needs a model with ttm_context 'last' (this one uses the mean context)")
