"""A small random model folder for the parallel layer's tests and benchmark (a stand-in while the
shipped `tiny` model is being trained). Same format and code path as any checkpoint: config.json,
model.safetensors and the project's task tokenizer, with TTM far from identity so guidance acts."""
from __future__ import annotations

from pathlib import Path

import torch

from quasar_dist.data.tasks import make_tasks, training_text
from quasar_dist.data.tokenizer_build import BOS_ID, EOS_ID, PAD_ID, build_tokenizer
from quasar_dist.model import ModelConfig, QuasarForCausalLM, save_pretrained


def toy_prompts(n: int, seed: int = 0) -> list[str]:
    return [t["prompt"] for t in make_tasks("mixed", n, seed)]


def randomise_ttm(model: QuasarForCausalLM, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.ttm.A.normal_(0, 0.5, generator=g)
            layer.ttm.B.normal_(0, 0.5, generator=g)
            layer.ttm.w.normal_(0, 1.0, generator=g)
            layer.ttm.b.fill_(0.3)
        for layer in model.model.layers:  # drawn after the others: A, B, w as before E existed
            layer.ttm.E.normal_(0, 0.02, generator=g)


def write_toy_model(folder: str | Path, *, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                    num_kv_heads: int = 2, intermediate_size: int = 128, ttm_dim: int = 16,
                    guidance: str = "bias", seed: int = 0) -> Path:
    tasks = make_tasks("mixed", 200, seed, split="train")
    tokenizer = build_tokenizer([training_text(t) for t in tasks], vocab_size=512)
    cfg = ModelConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads, ttm_dim=ttm_dim,
        max_position_embeddings=1024, bos_token_id=BOS_ID, eos_token_ids=[EOS_ID], pad_token_id=PAD_ID,
        guidance=guidance,
    )
    torch.manual_seed(seed)
    model = QuasarForCausalLM(cfg)
    randomise_ttm(model, seed)
    folder = save_pretrained(model, folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder
