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

    def __init__(self, model="tiny", mode: str = "gsot", tp: int = 1, tokenizer=None, *, device: str | None = None,
                 ttm: str | None = None, **gsot) -> None:
        self.config = from_dict(ReasoningConfig, {"mode": mode, **gsot}, source="Reasoner")
        self.tp = tp
        self._engine = None
        self._gang = None
        if tp == 1:
            self.model, self.tokenizer, self.model_name = _load(model, tokenizer, device, ttm)
        else:  # a Ray gang of tp ranks (DeepSpeed AutoTP), each running solve_prompts alike
            if isinstance(model, nn.Module):
                raise ValueError(f"Reasoner(tp={tp}) needs a model name or folder that every rank can load, not a module")
            from quasar_dist.parallel.config import ParallelConfig
            from quasar_dist.parallel.gang import ReplicaGang

            self._gang = ReplicaGang(model, ParallelConfig(tp=tp), ttm=ttm)
            self.model_name = str(model)

    def solve(self, prompts: list[str]) -> list[dict]:
        if self._gang is not None:
            rows = self._gang.solve(list(prompts), self.config)
        else:
            if self._engine is None:  # allocated once, reused by every solve call
                self._engine = build_engine(self.model, self.tokenizer, self.config)
            rows = solve_prompts(self.model, self.tokenizer, list(prompts), self.config, engine=self._engine)
        for prompt, row in zip(prompts, rows):
            row.update(prompt=prompt, mode=self.config.mode, model=self.model_name)
        return rows

    def close(self) -> None:
        """Release the gang's actors and placement group (tp > 1); a no-op for tp = 1."""
        if self._gang is not None:
            self._gang.shutdown()
            self._gang = None


def _load(model, tokenizer, device: str | None, ttm: str | None):
    if isinstance(model, nn.Module):
        if ttm is not None:
            raise ValueError("Reasoner(ttm=...) attaches an adapter while loading: pass a model name or folder")
        if tokenizer is None:
            raise ValueError("Reasoner(model=<nn.Module>) needs tokenizer= (a TextTokenizer)")
        if device is not None:
            model = model.to(device)
        return model.eval(), tokenizer, type(model).__name__
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model(model, ttm=ttm).to(device).eval()
    if tokenizer is None:
        tokenizer = TextTokenizer.from_folder(resolve_model_path(model), loaded.config)
    return loaded, tokenizer, str(model)
