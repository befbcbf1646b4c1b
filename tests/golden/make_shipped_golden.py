"""Record the shipped model's golden outputs on a fixed set (run after retraining the model):

    .venv/bin/python tests/golden/make_shipped_golden.py

Writes tests/golden/shipped_model.json, which tests/test_shipped_model.py checks and
docs/training.md quotes."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from quasar_dist.batch.model_check import model_gsot
from quasar_dist.data.answers import answers_match
from quasar_dist.data.tasks import read_tasks
from quasar_dist.model import TextTokenizer, load_model, resolve_model_path
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.reasoning.solve import solve_prompts

GOLDEN = Path(__file__).with_name("shipped_model.json")
SAMPLE = Path(__file__).resolve().parents[2] / "quasar_dist" / "assets" / "sample_tasks.parquet"
NUM_TASKS = 24
MODES = {"cot": {"mode": "cot"}, "gsot": {"mode": "gsot"}}


def golden_runs() -> dict:
    folder = resolve_model_path("tiny")
    model = load_model(folder)
    tokenizer = TextTokenizer.from_folder(folder, model.config)
    tasks = read_tasks(SAMPLE)[:NUM_TASKS]
    out = {"task_ids": [t["id"] for t in tasks]}
    for name, settings in MODES.items():  # GSoT with the checkpoint's gsot_defaults, as `quasar run` has it
        cfg = ReasoningConfig(**model_gsot(model.config, settings["mode"], {"max_new_tokens": 128, "max_batch_size": 8}),
                              **settings)
        rows = solve_prompts(model, tokenizer, [t["prompt"] for t in tasks], cfg)
        correct = [answers_match(r["answer"], t["answer"]) for r, t in zip(rows, tasks)]
        out[name] = {
            "answers": [r["answer"] for r in rows],
            "accuracy": sum(correct) / len(tasks),
            "generated_tokens": sum(r["generated_tokens"] for r in rows),
        }
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    GOLDEN.write_text(json.dumps(golden_runs(), indent=2) + "\n")
    print(GOLDEN.read_text())
