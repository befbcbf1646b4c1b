"""What a model folder holds, read without torch: where a model name points, its config, and a
TTM adapter's settings. The job's driver and the replicas' stage actors check models with these
before any rank loads one, and they never need torch (importing it costs ~2 s of CPU per process)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .config import TTM_CONTEXTS, ModelConfig, ModelLoadError

SHIPPED = {"tiny": Path(__file__).resolve().parent.parent / "assets" / "tiny"}
ADAPTER_WEIGHTS = "ttm.safetensors"
ADAPTER_CONFIG = "ttm_config.json"
TTM_FIELDS = ("ttm_dim", "tau_max", "ttm_context", "guidance")
SHAPE_FIELDS = ("hidden_size", "num_layers")


def resolve_model_path(name_or_path: str | Path) -> Path:
    if str(name_or_path) in SHIPPED:
        path = SHIPPED[str(name_or_path)]
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"shipped model {name_or_path!r} is missing from {path} (train it: quasar train configs/train/tiny.yaml)")
        return path
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"{name_or_path}: not a shipped model name ({', '.join(SHIPPED)}) nor a model folder")
    return path


def read_config(folder: Path) -> ModelConfig:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{folder}: missing config.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    return ModelConfig.from_hf_dict(data, source=str(path))


def read_adapter(folder: str | Path) -> dict:
    """The adapter's config, checked (one-line errors)."""
    folder = Path(folder).expanduser()
    path = folder / ADAPTER_CONFIG
    if not path.is_file() or not (folder / ADAPTER_WEIGHTS).is_file():
        raise ModelLoadError(f"{folder}: not a TTM adapter folder (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
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
                   ttm_context=meta["ttm_context"], guidance=meta["guidance"], ttm_hops=int(meta.get("ttm_hops", 0)))
