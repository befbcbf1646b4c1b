"""Held-out evaluation of a trained model: greedy CoT accuracy per kind (guidance off and on)
and the accuracy when the model is forced to answer at once (no steps), which shows whether
the steps matter.

    python -m quasar_dist.train.heldout [--model tiny] [--n 500] [--seed 777] [--json out.json]
"""
from __future__ import annotations

import argparse
import json

import torch

from quasar_dist.data.answers import answers_match, extract_answer
from quasar_dist.data.tasks import make_tasks
from quasar_dist.engine import Engine, SamplingParams, StopRule, generate
from quasar_dist.engine.stopping import ANSWER_MARK
from quasar_dist.model import load_with_tokenizer

from .evaluate import greedy_accuracy

HELDOUT_SEED = 777  # training uses data seeds 0 (train split) and 1 (val split)


@torch.no_grad()
def direct_answer_accuracy(model, tokenizer, tasks: list[dict], batch_size: int = 64) -> float:
    """Prompt, then the forced answer mark "####" right away: no reasoning steps."""
    mark = tokenizer.encode(ANSWER_MARK)
    prompts = [tokenizer.encode_prompt(t["prompt"]) + mark for t in tasks]
    before = model.guidance
    model.guidance = "off"
    try:
        engine = Engine(model, StopRule.from_tokenizer(tokenizer), num_slots=batch_size)
        seqs = generate(engine, prompts, SamplingParams(), max_new_tokens=8)
    finally:
        model.guidance = before
    answers = [extract_answer(ANSWER_MARK + tokenizer.decode(s.output_ids).split("\n")[0]) for s in seqs]
    return sum(answers_match(a, t["answer"]) for a, t in zip(answers, tasks)) / len(tasks)


def heldout_report(model_name: str = "tiny", n: int = 500, seed: int = HELDOUT_SEED) -> dict:
    model, tokenizer = load_with_tokenizer(model_name)
    report = {"model": str(model_name), "tasks_per_kind": n, "seed": seed, "split": "test"}
    for kind in ("arith", "logic"):
        tasks = make_tasks(kind, n, seed, "test")
        report[kind] = {
            "cot_accuracy_guidance_off": greedy_accuracy(model, tokenizer, tasks, "off", max_new_tokens=128),
            f"cot_accuracy_guidance_{model.config.guidance}": greedy_accuracy(model, tokenizer, tasks, model.config.guidance, max_new_tokens=128),
            "direct_answer_accuracy": direct_answer_accuracy(model, tokenizer, tasks),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Held-out accuracy of a trained model")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=HELDOUT_SEED)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = heldout_report(args.model, args.n, args.seed)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
