"""The plain script a user would write instead of `quasar run --mode cot` (issue #13's yardstick):
load the shipped weights with transformers, sort the prompts by length, `generate` greedily in
batches of 64, stop at EOS. Same prompts and token ids as our engine (the shipped tokenizer's
prompt encoding), same weights.

    .venv/bin/python benchmarks/hf_generate_loop.py TASKS.parquet [--batch 64] [--max-new 256]

Prints one JSON line: tasks, generated tokens (up to and including EOS), wall seconds of the
whole process (imports and loading included) and of the generate loop alone.
"""
from __future__ import annotations

import argparse
import json
import time

START = time.perf_counter()

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from quasar_dist.model import TextTokenizer, load_model, resolve_model_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tasks")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-new", type=int, default=256)
    args = parser.parse_args()
    folder = resolve_model_path("tiny")
    tokenizer = TextTokenizer.from_folder(folder, load_model(folder).config)
    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32).eval()
    prompts = sorted((tokenizer.encode_prompt(p) for p in pq.read_table(args.tasks, columns=["prompt"]).column(0).to_pylist()), key=len)
    eos, pad = list(tokenizer.eos_token_ids), model.config.pad_token_id or 0
    loop_start, generated = time.perf_counter(), 0
    with torch.no_grad():
        for i in range(0, len(prompts), args.batch):
            chunk = prompts[i : i + args.batch]
            width = max(map(len, chunk))
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.max_new, do_sample=False,
                                 eos_token_id=eos, pad_token_id=pad)
            for row in out[:, width:].tolist():
                generated += next((k + 1 for k, t in enumerate(row) if t in eos), len(row))
    end = time.perf_counter()
    print(json.dumps({"tasks": len(prompts), "generated_tokens": generated, "loop_s": end - loop_start,
                      "process_s": end - START}))


if __name__ == "__main__":
    main()
