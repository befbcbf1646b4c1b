"""Our engine (CoT, guidance off) against Hugging Face `generate` on the same weights, prompts,
greedy decoding and token limit, each at its best batch size. transformers is a test/bench
dependency only; the shipped model's config.json is a valid Llama config (TTM tensors are
ignored by transformers, which is exact with guidance off)."""
from __future__ import annotations

import time

import torch

from quasar_dist.engine import Engine, SamplingParams, StopRule, generate


def left_padded(prompts: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of prompts as HF `generate` wants it: ids [B, T] padded on the left, and the mask."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def _chunks(items, n):
    return [items[i : i + n] for i in range(0, len(items), n)]


@torch.no_grad()
def engine_tokens_per_s(model, tokenizer, prompt_ids, batch_size: int, max_new_tokens: int):
    before = model.guidance
    model.guidance = "off"
    try:
        engine = Engine(model, StopRule.from_tokenizer(tokenizer), num_slots=batch_size)
        start = time.perf_counter()
        seqs = generate(engine, prompt_ids, SamplingParams(), max_new_tokens=max_new_tokens)
        wall = time.perf_counter() - start
    finally:
        model.guidance = before
    outputs = [list(s.output_ids) for s in seqs]
    return sum(len(o) for o in outputs) / wall, outputs


@torch.no_grad()
def hf_tokens_per_s(hf_model, pad_id: int, eos_ids: list[int], prompt_ids, batch_size: int, max_new_tokens: int):
    total, outputs, wall = 0, [], 0.0
    for chunk in _chunks(prompt_ids, batch_size):
        ids, mask = left_padded(chunk, pad_id, hf_model.device)
        width = ids.shape[1]
        start = time.perf_counter()
        out = hf_model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=eos_ids, pad_token_id=pad_id,
        )
        wall += time.perf_counter() - start
        for row in out[:, width:].tolist():
            kept = []
            for tok in row:
                kept.append(tok)
                if tok in eos_ids:
                    break
            outputs.append(kept)
            total += len(kept)
    return total / wall, outputs


def load_hf(folder):
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - bench needs the [test] extra
        raise RuntimeError("engine_vs_hf needs transformers (pip install -e '.[test]')") from exc
    transformers.logging.set_verbosity_error()
    return transformers.AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32).eval()


def compare_engine_hf(model, tokenizer, folder, prompts, batch_sizes, max_new_tokens: int, repeats: int = 3) -> dict:
    prompt_ids = [tokenizer.encode_prompt(p) for p in prompts]
    hf_model = load_hf(folder)
    eos = list(tokenizer.eos_token_ids)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else eos[0]
    engine_runs, hf_runs = {}, {}
    for b in batch_sizes:  # interleaved, best of `repeats`: the machine is shared and noisy
        for _ in range(repeats):
            e = engine_tokens_per_s(model, tokenizer, prompt_ids, b, max_new_tokens)
            h = hf_tokens_per_s(hf_model, pad, eos, prompt_ids, b, max_new_tokens)
            engine_runs[b] = max(engine_runs.get(b, e), e, key=lambda r: r[0])
            hf_runs[b] = max(hf_runs.get(b, h), h, key=lambda r: r[0])
    best_engine = max(engine_runs, key=lambda b: engine_runs[b][0])
    best_hf = max(hf_runs, key=lambda b: hf_runs[b][0])
    same = sum(a == b for a, b in zip(engine_runs[best_engine][1], hf_runs[best_hf][1]))
    return {
        "tokens_per_s_engine": engine_runs[best_engine][0],
        "tokens_per_s_hf": hf_runs[best_hf][0],
        "ratio": engine_runs[best_engine][0] / hf_runs[best_hf][0],
        "details": {
            "best_batch_engine": best_engine,
            "best_batch_hf": best_hf,
            "tokens_per_s_engine_by_batch": {b: r[0] for b, r in engine_runs.items()},
            "tokens_per_s_hf_by_batch": {b: r[0] for b, r in hf_runs.items()},
            "identical_greedy_outputs": same / len(prompts),
            "prompts": len(prompts),
            "repeats": repeats,
            "max_new_tokens": max_new_tokens,
        },
    }
