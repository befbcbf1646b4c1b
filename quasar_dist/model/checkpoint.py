"""Load and save model folders in the Hugging Face layout: config.json, *.safetensors,
tokenizer.json. Weights are read with safetensors only: pickle files are refused."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .adapter import load_adapter_weights
from .config import ModelLoadError
from .decoder import QuasarForCausalLM
from .folder import adapted_config, read_adapter, read_config

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
IGNORED_KEYS = ("rotary_emb.inv_freq",)
TTM_SEED = 0  # freshly attached TTM projections are drawn from a fixed seed: reproducible


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(f"{folder}: only pickle weights ({pickles[0]}); refused, safetensors only")
    raise ModelLoadError(f"{folder}: no *.safetensors weight files")


def _read_tensors(files: list[Path]) -> dict[str, torch.Tensor]:
    tensors = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                for name in fh.keys():
                    tensors[name] = fh.get_tensor(name)
        except Exception as exc:  # truncated or corrupt file
            raise ModelLoadError(f"{f}: unreadable safetensors file ({type(exc).__name__})") from None
    return tensors


def attach_fresh_ttm(model: QuasarForCausalLM, seed: int = TTM_SEED) -> None:
    """Every layer's TTM to the identity, its projections drawn from `seed` (reproducible)."""
    g = torch.Generator().manual_seed(seed)
    for layer in model.model.layers:
        layer.ttm.reset_parameters(generator=g)


def load_state(model: QuasarForCausalLM, tensors: dict[str, torch.Tensor], source: str) -> bool:
    """Copy tensors into the model with one-line errors. Returns True if TTM weights were present."""
    expected = model.state_dict()
    tied = model.config.tie_word_embeddings
    for name, param in expected.items():
        if name not in tensors:
            if ".ttm." in name or (tied and name == "lm_head.weight"):
                continue
            raise ModelLoadError(f"{source}: missing tensor {name!r}")
        if tuple(tensors[name].shape) != tuple(param.shape):
            raise ModelLoadError(
                f"{source}: tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {tuple(param.shape)}"
            )
    unexpected = [n for n in tensors if n not in expected and not n.endswith(IGNORED_KEYS)]
    if unexpected:
        raise ModelLoadError(f"{source}: unexpected tensor {unexpected[0]!r}")
    has_ttm = any(".ttm." in n for n in tensors)
    if not has_ttm:
        attach_fresh_ttm(model)
    with torch.no_grad():
        for name, param in expected.items():
            if name in tensors:
                param.copy_(tensors[name].to(param.dtype))
    return has_ttm


def load_pretrained(folder: str | Path, guidance: str | None = None, dtype: torch.dtype = torch.float32,
                    ttm: str | Path | None = None) -> QuasarForCausalLM:
    """A model folder; with `ttm`, an adapter folder (adapter.py) whose TTM replaces the folder's."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: model folder not found")
    cfg = read_config(folder)
    meta = None
    if ttm is not None:
        meta = read_adapter(ttm)
        cfg = adapted_config(cfg, meta, str(ttm))
    tensors = _read_tensors(_weight_files(folder))
    if meta is not None:
        tensors = {k: v for k, v in tensors.items() if ".ttm." not in k}
    model = QuasarForCausalLM(cfg, guidance=guidance)
    model.has_trained_ttm = load_state(model, tensors, str(folder))
    if meta is not None:
        load_adapter_weights(model, ttm)
        model.has_trained_ttm = True
    model.source = str(folder)
    model.ttm_source = None if ttm is None else str(ttm)
    return model.to(dtype).eval()


def save_pretrained(model: QuasarForCausalLM, folder: str | Path, tokenizer_json: str | Path | None = None) -> Path:
    """Write config.json, model.safetensors and (copied) tokenizer.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    cfg.guidance = model.guidance
    (folder / "config.json").write_text(json.dumps(cfg.to_hf_dict(), indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(folder / "model.safetensors"))
    if tokenizer_json is not None:
        data = Path(tokenizer_json).read_bytes()
        (folder / "tokenizer.json").write_bytes(data)
    return folder
