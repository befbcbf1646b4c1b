"""The temperature-guided decoder (plain PyTorch: imports neither ray nor deepspeed).

The names below load on first use, so code that only reads a model folder (`model.folder`:
the job's driver, the stage actors) does not import torch."""
from __future__ import annotations

from quasar_dist.util.lazy_names import lazy_getattr

_HOMES = {
    "GUIDANCE_MODES": ".config", "ModelConfig": ".config", "ModelLoadError": ".config",
    "QuasarForCausalLM": ".decoder", "TemperatureKVCache": ".kv_cache", "TextTokenizer": ".tokenizer",
    "load_model": ".registry", "load_with_tokenizer": ".registry", "load_pretrained": ".checkpoint",
    "resolve_model_path": ".folder", "save_pretrained": ".checkpoint",
}

__getattr__ = lazy_getattr(__name__, _HOMES)


__all__ = sorted(_HOMES)
