"""`Reasoner`: the Python entry point (design.md "Contracts / Python")."""
from __future__ import annotations

import torch
from torch import nn

from quasar_dist.model import TextTokenizer, load_model, resolve_model_path
from quasar_dist.util.typed_config import from_dict

from .config import ReasoningConfig
from .solve import build_engine, solve_prompts


class Reasoner:
    """`Reasoner(model="tiny" | path | nn.Module, mode="gsot", tp=1, tokenizer=None, **gsot)`;
    `**gsot` are ReasoningConfig fields (type-checked). `.solve(prompts)` returns one output
    row per prompt, in order."""

    def __init__(self, model="tiny", mode: str = "gsot", tp: int = 1, tokenizer=None, *, device: str | None = None, **gsot) -> None:
        self.config = from_dict(ReasoningConfig, {"mode": mode, **gsot}, source="Reasoner")
        if tp != 1:
            # TODO(parallel): tp > 1 goes through quasar_dist.parallel (a Ray gang of tp ranks,
            # DeepSpeed AutoTP), each rank calling solve_prompts with the same inputs.
            raise NotImplementedError(f"tp={tp}: tensor parallelism needs quasar_dist.parallel, which is not available yet; use tp=1")
        self.tp = tp
        self.model, self.tokenizer, self.model_name = _load(model, tokenizer, device)
        self._engine = None

    def solve(self, prompts: list[str]) -> list[dict]:
        if self._engine is None:  # allocated once, reused by every solve call
            self._engine = build_engine(self.model, self.tokenizer, self.config)
        rows = solve_prompts(self.model, self.tokenizer, list(prompts), self.config, engine=self._engine)
        for prompt, row in zip(prompts, rows):
            row.update(prompt=prompt, mode=self.config.mode, model=self.model_name)
        return rows


def _load(model, tokenizer, device: str | None):
    if isinstance(model, nn.Module):
        if tokenizer is None:
            raise ValueError("Reasoner(model=<nn.Module>) needs tokenizer= (a TextTokenizer)")
        if device is not None:
            model = model.to(device)
        return model.eval(), tokenizer, type(model).__name__
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model(model).to(device).eval()
    if tokenizer is None:
        tokenizer = TextTokenizer.from_folder(resolve_model_path(model), loaded.config)
    return loaded, tokenizer, str(model)
