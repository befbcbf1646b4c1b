"""Resumable training checkpoints without pickle: weights and AdamW state in safetensors,
counters and param-group settings in JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_training_state(folder: Path, model, optimizer, step: int, history: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight" or not model.config.tie_word_embeddings}, str(tmp / "model.safetensors"))
    state = optimizer.state_dict()
    tensors = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            tensors[f"{idx}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in state["param_groups"]]
    (tmp / "state.json").write_text(json.dumps({"step": step, "param_groups": groups, "history": history}))
    final = folder / "latest"
    if final.exists():
        for f in final.iterdir():
            f.unlink()
        final.rmdir()
    os.replace(tmp, final)  # a checkpoint is complete or absent, never half-written


def load_training_state(folder: Path, model, optimizer) -> tuple[int, list[dict]]:
    latest = folder / "latest"
    if not (latest / "state.json").is_file():
        return 0, []
    meta = json.loads((latest / "state.json").read_text())
    model.load_state_dict(load_file(str(latest / "model.safetensors")), strict=False)
    flat = load_file(str(latest / "optimizer.safetensors"))
    state: dict[int, dict] = {}
    for name, value in flat.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"]), list(meta["history"])
