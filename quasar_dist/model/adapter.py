"""TTM adapters: the temperature mechanism of a model, apart from its weights.

An adapter folder holds `ttm.safetensors` (every `*.ttm.*` tensor) and `ttm_config.json` (the
TTM settings and the base's shape). `load_model(BASE, ttm=ADAPTER)` builds BASE with the
adapter's TTM settings and weights: this is how a Llama, Qwen2 or Mistral checkpoint gets
temperatures without retraining it (`quasar train` with `adapter_of`, docs/model.md). An
untrained adapter is the identity (w = E = 0, b = 0): the outputs equal the base's exactly.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import TTM_CONTEXTS, ModelConfig, ModelLoadError

WEIGHTS = "ttm.safetensors"
CONFIG = "ttm_config.json"
TTM_FIELDS = ("ttm_dim", "tau_max", "ttm_context", "guidance")
SHAPE_FIELDS = ("hidden_size", "num_layers")


def save_adapter(model, folder: str | Path, base: str) -> Path:
    """Write the model's TTM as an adapter of `base` (a name or folder, recorded for people)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    meta = {"base": str(base), **{f: getattr(cfg, f) for f in SHAPE_FIELDS + TTM_FIELDS}}
    meta["guidance"] = model.guidance
    (folder / CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if ".ttm." in k}
    save_file(state, str(folder / WEIGHTS))
    return folder


def read_adapter(folder: str | Path) -> dict:
    """The adapter's config, checked (one-line errors)."""
    folder = Path(folder).expanduser()
    path = folder / CONFIG
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        raise ModelLoadError(f"{folder}: not a TTM adapter folder (needs {CONFIG} and {WEIGHTS})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    missing = [f for f in SHAPE_FIELDS + TTM_FIELDS if f not in meta]
    if missing:
        raise ModelLoadError(f"{path}: missing key {missing[0]!r}")
    if meta["ttm_context"] not in TTM_CONTEXTS:
        raise ModelLoadError(f"{path}: unknown ttm_context {meta['ttm_context']!r}")
    return meta


def adapted_config(cfg: ModelConfig, meta: dict, source: str) -> ModelConfig:
    """The base's config with the adapter's TTM settings; the shapes must match."""
    for f in SHAPE_FIELDS:
        if int(meta[f]) != getattr(cfg, f):
            raise ModelLoadError(f"{source}: adapter is for {f} {meta[f]}, the base has {getattr(cfg, f)}")
    return replace(cfg, ttm_dim=int(meta["ttm_dim"]), tau_max=float(meta["tau_max"]),
                   ttm_context=meta["ttm_context"], guidance=meta["guidance"])


def load_adapter_weights(model, folder: str | Path) -> None:
    """Copy the adapter's tensors into the model's TTM (every TTM tensor must be there)."""
    folder = Path(folder).expanduser()
    expected = {k: v for k, v in model.state_dict().items() if ".ttm." in k}
    with safe_open(str(folder / WEIGHTS), framework="pt") as f:
        names = set(f.keys())
        extra = sorted(names - set(expected))
        if extra:
            raise ModelLoadError(f"{folder / WEIGHTS}: unexpected tensor {extra[0]!r}")
        with torch.no_grad():
            for name, param in expected.items():
                if name not in names:
                    raise ModelLoadError(f"{folder / WEIGHTS}: missing tensor {name!r}")
                tensor = f.get_tensor(name)
                if tuple(tensor.shape) != tuple(param.shape):
                    raise ModelLoadError(f"{folder / WEIGHTS}: tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(param.shape)}")
                param.copy_(tensor.to(param.dtype))
