"""Tiny random transformers checkpoints saved to a folder: the reference for equivalence tests.
transformers is used only here (tests), never at run time."""
from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_SHAPE = dict(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


def make_hf_checkpoint(arch: str, folder: Path, seed: int = 0, rope_theta: float = 10000.0):
    import transformers as tf

    classes = {
        "llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
        "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
        "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
    }
    cfg_cls, model_cls = classes[arch]
    extra = {"sliding_window": 128} if arch == "mistral" else {}
    cfg = cfg_cls(**TINY_SHAPE, **extra, rope_theta=rope_theta, tie_word_embeddings=(arch == "qwen2"))
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    with torch.no_grad():  # make biases non-zero so they are really tested
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    _write_tokenizer(folder)
    return model


def _write_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(TINY_SHAPE["vocab_size"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w3"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
