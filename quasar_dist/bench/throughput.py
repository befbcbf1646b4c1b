"""Offline throughput in the field's standard form (the method of vLLM's `benchmark_throughput`):
N requests with random prompt and output lengths (uniform ranges, seeded), output lengths forced
(EOS ignored), greedy. Our engine gets all requests at once (continuous batching); Hugging Face
`generate` runs them as vLLM's `run_hf` does: static batches in request order, each padded to its
longest prompt and generating the longest output of the batch (`max_new_tokens`), with the
default dynamic cache and, where transformers offers it, its static cache.

Output tokens/s counts the requested output tokens only, for both. The roofline fraction is our
engine's FLOPs rate (counted from the tokens it fed and the cache entries it attended,
engine/flops.py) over the GEMM peak measured in the same process.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from quasar_dist.engine import Engine, SamplingParams, Sequence, StopRule, flops_for

from .engine_vs_hf import left_padded


@dataclass(frozen=True, slots=True)
class Workload:
    label: str
    num_requests: int
    prompt_len: tuple[int, int]
    output_len: tuple[int, int]
    seed: int = 0

    def requests(self, vocab: int, first_id: int = 3) -> list[tuple[list[int], int]]:
        """(prompt ids, output length) per request: token ids uniform in [first_id, vocab)."""
        g = torch.Generator().manual_seed(self.seed)
        out = []
        for _ in range(self.num_requests):
            n = int(torch.randint(self.prompt_len[0], self.prompt_len[1] + 1, (1,), generator=g))
            m = int(torch.randint(self.output_len[0], self.output_len[1] + 1, (1,), generator=g))
            out.append((torch.randint(first_id, vocab, (n,), generator=g).tolist(), m))
        return out


def gemm_peak_flops(sizes: tuple[int, ...] = (1024, 2048), repeats: int = 20) -> float:
    """FLOP/s of square fp32 matmuls on this process's threads: the best of `repeats` at each
    size (a peak is a maximum: on a shared machine every slower run is noise)."""
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = max(best, 2.0 * size**3 / (time.perf_counter() - start))
    return best


NEVER_STOP = StopRule(newline_ids=frozenset(), eos_ids=frozenset(), decode=lambda ids: "")


@torch.no_grad()
def run_fixed_lengths(model, requests, num_slots: int, *, rule: StopRule = NEVER_STOP, guidance: str = "off",
                      shortest_first: bool = False) -> tuple[float, list[Sequence]]:
    """(seconds, sequences) for every request (prompt ids, output length) to generate exactly
    its length, greedily, under `guidance` (steps committed at the rule's newlines when it is
    on); submitted in request order, or shortest prompt first as solve_prompts submits."""
    before = model.guidance
    model.guidance = guidance
    try:
        max_len = max(len(p) + m for p, m in requests)
        engine = Engine(model, rule, num_slots=num_slots, max_len=max_len)
        seqs = [Sequence(i, p, SamplingParams(), max_new_tokens=m, commit_steps=guidance != "off")
                for i, (p, m) in enumerate(requests)]
        start = time.perf_counter()
        for seq in sorted(seqs, key=lambda s: len(s.prompt_ids)) if shortest_first else seqs:
            engine.add(seq)
        while engine.has_work():
            for seq in engine.step():
                engine.release(seq)
        wall = time.perf_counter() - start
    finally:
        model.guidance = before
    return wall, seqs


def run_engine(model, requests, num_slots: int) -> dict:
    wall, seqs = run_fixed_lengths(model, requests, num_slots)
    tokens = sum(len(p) + len(s.output_ids) for (p, _), s in zip(requests, seqs))
    attended = sum(s.counters.attended_kv for s in seqs)
    return {"wall_s": wall, "outputs": [s.output_ids for s in seqs], "flops": flops_for(model.config, tokens, attended)}


@torch.no_grad()
def run_hf(hf_model, requests, max_batch_size: int, pad_id: int, cache_implementation: str | None = None) -> dict:
    """vLLM's run_hf: fill a batch in request order, pad left, max_new_tokens = its longest."""
    wall, outputs = 0.0, []
    for first in range(0, len(requests), max_batch_size):
        batch = requests[first : first + max_batch_size]
        ids, mask = left_padded([p for p, _ in batch], pad_id)
        width = ids.shape[1]
        longest = max(m for _, m in batch)
        extra = {"cache_implementation": cache_implementation} if cache_implementation else {}
        start = time.perf_counter()
        out = hf_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=longest, min_new_tokens=longest,
                                do_sample=False, pad_token_id=pad_id, eos_token_id=None, **extra)
        wall += time.perf_counter() - start
        outputs += [row[:m] for row, (_, m) in zip(out[:, width:].tolist(), batch)]
    return {"wall_s": wall, "outputs": outputs}


def compare_throughput(model, hf_model, workload: Workload, *, num_slots: int, hf_batch_size: int,
                       peak_flops: float, static_cache: bool = True) -> dict:
    """One model label's row of the `throughput` section."""
    requests = workload.requests(model.config.vocab_size)
    output_tokens = sum(m for _, m in requests)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    ours = run_engine(model, requests, num_slots)
    hf = run_hf(hf_model, requests, hf_batch_size, pad)
    row = {
        "output_tokens_per_s_engine": output_tokens / ours["wall_s"],
        "output_tokens_per_s_hf": output_tokens / hf["wall_s"],
        "requests_per_s_engine": len(requests) / ours["wall_s"],
        "requests_per_s_hf": len(requests) / hf["wall_s"],
    }
    row["ratio"] = row["output_tokens_per_s_engine"] / row["output_tokens_per_s_hf"]
    row["roofline_fraction"] = ours["flops"] / ours["wall_s"] / peak_flops
    row["identical_outputs"] = sum(a == b for a, b in zip(ours["outputs"], hf["outputs"])) / len(requests)
    if static_cache:
        try:
            static = run_hf(hf_model, requests, hf_batch_size, pad, cache_implementation="static")
            row["output_tokens_per_s_hf_static"] = output_tokens / static["wall_s"]
        except Exception as exc:  # an older transformers, or a model it has no static cache for
            row["output_tokens_per_s_hf_static"] = None
            row["hf_static_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    row["workload"] = {"requests": workload.num_requests, "prompt_len": list(workload.prompt_len),
                       "output_len": list(workload.output_len), "seed": workload.seed, "engine_slots": num_slots,
                       "hf_batch_size": hf_batch_size, "output_tokens": output_tokens}
    return row


def random_qwen2_folder(config_path: str | Path, folder: str | Path, seed: int = 0) -> Path:
    """A Qwen2-shaped checkpoint with random weights, from a config in configs/ (no download:
    random weights decode at the same speed as trained ones)."""
    import json

    import transformers

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    values = json.loads(Path(config_path).read_text())
    torch.manual_seed(seed)
    hf = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**values)).eval()
    hf.save_pretrained(folder, safe_serialization=True)
    return folder
