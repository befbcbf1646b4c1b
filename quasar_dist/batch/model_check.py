"""The driver's look at the model before any replica starts: the folder exists, its config and
tokenizer are there, and `tp` divides its heads. Reads config.json only; loads no weights."""
from __future__ import annotations

from pathlib import Path

from quasar_dist.model.config import ModelConfig, ModelLoadError
from quasar_dist.model.folder import adapted_config, read_adapter, read_config, resolve_model_path
from quasar_dist.parallel.config import check_shardable
from quasar_dist.util.typed_config import ConfigError


def check_model(name_or_path: str, tp: int, ttm: str | None = None, gsot: dict | None = None,
                mode: str = "gsot") -> ModelConfig:
    """`gsot` (the run's reasoning settings): also those that depend on the model's shape."""
    folder = Path(resolve_model_path(name_or_path))
    config = read_config(folder)
    if ttm is not None:  # the adapter must exist and fit the base
        config = adapted_config(config, read_adapter(ttm), str(ttm))
    if not (folder / "tokenizer.json").is_file():
        raise ModelLoadError(f"{folder}: missing tokenizer.json")
    try:
        check_shardable(config, tp)
    except ValueError as exc:
        raise ConfigError(f"tp: {exc}") from None
    from quasar_dist.reasoning.config import ReasoningConfig, check_budget_layer
    from quasar_dist.util.typed_config import from_dict

    if config.gsot_defaults:
        from_dict(ReasoningConfig, dict(config.gsot_defaults), source=f"{folder / 'config.json'}",
                  prefix="quasar.gsot_defaults.")
    if gsot is not None:
        reasoning = from_dict(ReasoningConfig, {**model_gsot(config, mode, gsot), "mode": mode}, source="run config",
                              prefix="gsot.")
        try:
            check_budget_layer(config, reasoning)
        except ValueError as exc:
            raise ConfigError(f"gsot.kv_budget_layer: {exc}") from None
    return config


# one eviction rule: a run that sets any of these replaces the checkpoint's whole rule
EVICTION_RULE = ("kv_budget", "kv_keep_above", "kv_budget_layer", "kv_score", "kv_evictor")


def model_gsot(config: ModelConfig, mode: str, gsot: dict) -> dict:
    """The run's reasoning settings: in GSoT mode the checkpoint's calibrated `gsot_defaults`
    with the keys the run set on top (a key set to null, e.g. `kv_keep_above: null`, also wins;
    a run that names any key of the eviction rule gets none of the checkpoint's rule, so a
    budget of its own never meets the checkpoint's threshold); in CoT mode the run's own."""
    if mode != "gsot":
        return dict(gsot)
    defaults = dict(config.gsot_defaults)
    if any(k in gsot for k in EVICTION_RULE):
        defaults = {k: v for k, v in defaults.items() if k not in EVICTION_RULE}
    return {**defaults, **gsot}
