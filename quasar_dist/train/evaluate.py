"""Validation accuracy during training: greedy chain-of-thought decoding.

TODO(engine): switch to quasar_dist.reasoning.solve.solve_prompts once the engine lands; this
compact decoder exists so training does not wait for it.
"""
from __future__ import annotations

import torch

from quasar_dist.data.answers import answers_match, extract_answer


@torch.no_grad()
def greedy_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy decode through the KV + temperature cache, committing a step at every newline."""
    newline = set(tokenizer.newline_token_ids)
    eos = set(tokenizer.eos_token_ids)
    prompt_ids = [tokenizer.encode_prompt(p) for p in prompts]
    cache = model.allocate_cache(len(prompts), max(len(p) for p in prompt_ids) + max_new_tokens + 1)
    next_tok = []
    for slot, ids in enumerate(prompt_ids):
        cache.reset(slot)
        logits = model.forward_cached(torch.tensor([ids]), cache, torch.tensor([slot]))
        model.commit_step(cache, slot)
        next_tok.append(int(logits[0].argmax()))
    out = [[] for _ in prompts]
    live = list(range(len(prompts)))
    for _ in range(max_new_tokens):
        for s in live:
            out[s].append(next_tok[s])
        live = [s for s in live if not _finished(out[s], tokenizer, eos, newline)]
        if not live:
            break
        slots = torch.tensor(live)
        logits = model.forward_cached(torch.tensor([[next_tok[s]] for s in live]), cache, slots)
        for row, s in enumerate(live):
            if out[s][-1] in newline:
                model.commit_step(cache, s)
            next_tok[s] = int(logits[row].argmax())
    return [tokenizer.decode(o) for o in out]


def _finished(tokens: list[int], tokenizer, eos: set, newline: set) -> bool:
    if tokens[-1] in eos:
        return True
    if tokens[-1] in newline:
        last_line = tokenizer.decode(tokens).rstrip("\n").rsplit("\n", 1)[-1]
        return last_line.lstrip().startswith("####")
    return False


def greedy_accuracy(model, tokenizer, tasks: list[dict], guidance: str, max_new_tokens: int = 112) -> float:
    """Share of tasks whose greedy chain ends in the reference answer, under `guidance`."""
    previous, was_training = model.guidance, model.training
    model.eval()
    model.guidance = guidance
    try:
        texts = greedy_generate(model, tokenizer, [t["prompt"] for t in tasks], max_new_tokens)
    finally:
        model.guidance = previous
        model.train(was_training)
    correct = sum(answers_match(extract_answer(x), t["answer"]) for x, t in zip(texts, tasks))
    return correct / max(1, len(tasks))
