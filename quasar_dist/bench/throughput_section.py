"""The `throughput` section of `quasar bench`: two model sizes through throughput.py.

    tiny       the shipped model (0.9M parameters): prompts 32-96 tokens, outputs 32-128
    qwen2-40m  a random-weight Qwen2-shaped model from configs/bench/qwen2-40m.json (40M
               parameters, q/k/v biases, tied embeddings, GQA 8/2): prompts 64-256, outputs 32-128
Both: greedy, EOS ignored, output lengths forced; our engine with its default slot count, HF at
batch 64, vLLM's run_hf static batches.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from quasar_dist.model import load_model
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.solve import engine_slots

from .engine_vs_hf import load_hf
from .throughput import Workload, compare_throughput, gemm_peak_flops, random_qwen2_folder

QWEN2_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bench" / "qwen2-40m.json"


def throughput_section(model, folder, requests: dict[str, int]) -> dict:
    peak = gemm_peak_flops()
    out = {"gemm_peak_flops": peak}
    out["tiny"] = compare_throughput(model, load_hf(folder), Workload("tiny", requests["tiny"], (32, 96), (32, 128)),
                                     num_slots=engine_slots(model, ReasoningConfig()), hf_batch_size=64, peak_flops=peak)
    if QWEN2_CONFIG.exists():  # a source checkout (the config is not packaged)
        with tempfile.TemporaryDirectory() as tmp:
            qwen_folder = random_qwen2_folder(QWEN2_CONFIG, Path(tmp) / "qwen2-40m")
            qwen = load_model(qwen_folder).eval()
            out["qwen2-40m"] = compare_throughput(
                qwen, load_hf(qwen_folder), Workload("qwen2-40m", requests["qwen2-40m"], (64, 256), (32, 128)),
                num_slots=engine_slots(qwen, ReasoningConfig(max_cache_len=256 + 128)), hf_batch_size=64, peak_flops=peak)
    later_peak = gemm_peak_flops()  # measured again after: the peak is the best of both
    if later_peak > peak:
        out["gemm_peak_flops"] = later_peak
        for row in out.values():
            if isinstance(row, dict):
                row["roofline_fraction"] *= peak / later_peak
    out["ratio"] = min(row["ratio"] for key, row in out.items() if isinstance(row, dict))
    return out
