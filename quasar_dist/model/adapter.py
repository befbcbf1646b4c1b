"""TTM adapters: the temperature mechanism of a model, apart from its weights.

An adapter folder holds `ttm.safetensors` (every `*.ttm.*` tensor) and `ttm_config.json` (the
TTM settings and the base's shape). `load_model(BASE, ttm=ADAPTER)` builds BASE with the
adapter's TTM settings and weights: this is how a Llama, Qwen2 or Mistral checkpoint gets
temperatures without retraining it (`quasar train` with `adapter_of`, docs/model.md). An
untrained adapter is the identity (w = E = 0, b = 0): the outputs equal the base's exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import ModelLoadError
from .folder import ADAPTER_CONFIG as CONFIG, ADAPTER_WEIGHTS as WEIGHTS, SHAPE_FIELDS, TTM_FIELDS


def save_adapter(model, folder: str | Path, base: str) -> Path:
    """Write the model's TTM as an adapter of `base` (a name or folder, recorded for people)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    meta = {"base": str(base), **{f: getattr(cfg, f) for f in SHAPE_FIELDS + TTM_FIELDS}}
    meta["guidance"] = model.guidance
    meta["ttm_hops"] = cfg.ttm_hops  # optional on reading: adapters written before hops have none
    (folder / CONFIG).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if ".ttm." in k}
    save_file(state, str(folder / WEIGHTS))
    return folder


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
