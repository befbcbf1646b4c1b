"""The temperature-guided decoder (plain PyTorch: imports neither ray nor deepspeed).

The names below load on first use, so code that only reads a model folder (`model.folder`:
the job's driver, the stage actors) does not import torch."""
from __future__ import annotations

import importlib

_HOMES = {
    "GUIDANCE_MODES": ".config", "ModelConfig": ".config", "ModelLoadError": ".config",
    "QuasarForCausalLM": ".decoder", "TemperatureKVCache": ".kv_cache", "TextTokenizer": ".tokenizer",
    "load_model": ".registry", "load_pretrained": ".checkpoint", "resolve_model_path": ".folder",
    "save_pretrained": ".checkpoint",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value  # cached, and over a same-named submodule the import just bound
    return value


__all__ = sorted(_HOMES)
