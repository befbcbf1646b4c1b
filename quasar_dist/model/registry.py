"""Model names: `tiny` is the model shipped in the package; anything else is a local folder."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_pretrained
from .config import ModelLoadError
from .folder import resolve_model_path
from .tokenizer import TextTokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(name_or_path: str | Path, guidance: str | None = None, dtype: torch.dtype | str = torch.float32,
               ttm: str | Path | None = None):
    """Load a model folder (or a shipped name) as a `torch.nn.Module` whose
    `forward(input_ids [B, T])` returns logits [B, T, vocab]. `ttm`: a TTM adapter folder
    (model/adapter.py) attached to it in place of its own temperatures."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype!r} (use one of {', '.join(DTYPES)})")
        dtype = DTYPES[dtype]
    return load_pretrained(resolve_model_path(name_or_path), guidance=guidance, dtype=dtype, ttm=ttm)


def load_with_tokenizer(name_or_path: str | Path, **options):
    """(model, tokenizer) of a model folder or shipped name; options as for load_model."""
    folder = resolve_model_path(name_or_path)
    model = load_model(folder, **options)
    return model, TextTokenizer.from_folder(folder, model.config)
