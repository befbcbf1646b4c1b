"""The temperature-guided decoder (plain PyTorch: imports neither ray nor deepspeed)."""
from .checkpoint import load_pretrained, save_pretrained
from .config import GUIDANCE_MODES, ModelConfig, ModelLoadError
from .decoder import QuasarForCausalLM
from .kv_cache import TemperatureKVCache
from .registry import load_model, resolve_model_path
from .tokenizer import TextTokenizer

__all__ = [
    "GUIDANCE_MODES", "ModelConfig", "ModelLoadError", "QuasarForCausalLM", "TemperatureKVCache",
    "TextTokenizer", "load_model", "load_pretrained", "resolve_model_path", "save_pretrained",
]
