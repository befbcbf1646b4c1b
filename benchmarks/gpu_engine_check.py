"""The shipped model on CUDA against the CPU: same greedy CoT and GSoT rows, and the engine's
tokens/s against Hugging Face `generate` on the same GPU.

    python benchmarks/gpu_engine_check.py --json out.json      (needs a CUDA GPU)
"""
from __future__ import annotations

import argparse
import json

import torch

from quasar_dist.bench.engine_vs_hf import engine_tokens_per_s, hf_tokens_per_s, load_hf
from quasar_dist.bench.workload import load_workload, run_reasoning
from quasar_dist.model import resolve_model_path
from quasar_dist.reasoning.config import ReasoningConfig

SAME = ("answer", "steps", "generated_tokens", "stop_reason")


def compare_devices(model, tokenizer, tasks, mode: str, device: str) -> dict:
    config = ReasoningConfig(mode=mode, max_new_tokens=128, max_batch_size=64)
    runs = {}
    for where in ("cpu", device):
        runs[where] = run_reasoning(model.to(where), tokenizer, tasks, config)
    same = sum(all(a.get(k) == b.get(k) for k in SAME) for a, b in zip(runs["cpu"].rows, runs[device].rows))
    return {"rows": len(tasks), "identical_rows": same, "accuracy_cpu": runs["cpu"].accuracy,
            "accuracy_device": runs[device].accuracy, "tokens_per_s_cpu": runs["cpu"].tokens_per_s,
            "tokens_per_s_device": runs[device].tokens_per_s}


def engine_vs_hf(model, tokenizer, tasks, device: str, batch_size: int = 64) -> dict:
    prompt_ids = [tokenizer.encode_prompt(t["prompt"]) for t in tasks[:batch_size]]
    hf = load_hf(resolve_model_path("tiny")).to(device)
    model = model.to(device)
    runs = []
    for _ in range(2):  # the first pass warms CUDA up; the second is reported
        ours, our_out = engine_tokens_per_s(model, tokenizer, prompt_ids, batch_size, 128)
        theirs, hf_out = hf_tokens_per_s(hf, model.config.pad_token_id, model.config.eos_token_ids, prompt_ids, batch_size, 128)
        runs.append({"engine_tokens_per_s": ours, "hf_generate_tokens_per_s": theirs, "ratio": ours / theirs,
                     "identical_outputs": sum(a == b for a, b in zip(our_out, hf_out)), "prompts": len(prompt_ids)})
    return runs[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    model, tokenizer, tasks = load_workload("tiny", 32)
    result = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else args.device}
    for mode in ("cot", "gsot"):
        result[mode] = compare_devices(model, tokenizer, tasks, mode, args.device)
        print(mode, result[mode], flush=True)
    try:
        result["engine_vs_hf"] = engine_vs_hf(model, tokenizer, tasks, args.device)
    except Exception as exc:  # report and keep the device comparison
        result["engine_vs_hf"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result, indent=2, default=str))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2, default=str)


if __name__ == "__main__":
    main()
