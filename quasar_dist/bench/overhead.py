"""Cost of guidance itself: the same engine with guidance on (steps committed and temperatures
refreshed at every boundary, read by attention at every token) against off. "On" is the model's
own guidance, or `bias` for a model that ships with guidance off (its temperatures then only
decide what GSoT drops): comparing off with off would measure nothing.

Guidance changes what a model writes where it was not trained with it (the shipped stage 7:
accuracy 97% off, 52% under bias, and one task runs to max_new_tokens), so the tokens/s of two
free-running loops compare different workloads: a long tail of a few sequences decodes at a
fraction of a full batch's rate. `overhead` is therefore measured at equal work: every task
generates exactly as many tokens as it does with guidance off (answer line and EOS not
stopping it; its newlines still end steps), so both sides run the same batch shapes at every
step. The free-running loops are reported too (`free_running`)."""
from __future__ import annotations

from quasar_dist.engine import StopRule
from quasar_dist.reasoning.config import ReasoningConfig

from .throughput import run_fixed_lengths
from .workload import fastest_interleaved


def compare_guidance(model, tokenizer, tasks, batch_size: int, max_new_tokens: int, repeats: int = 5) -> dict:
    guided = "bias" if model.config.guidance == "off" else model.config.guidance
    configs = {name: ReasoningConfig(mode="cot", guidance=guidance, max_new_tokens=max_new_tokens, max_batch_size=batch_size)
               for name, guidance in (("off", "off"), ("on", guided))}
    runs = fastest_interleaved(model, tokenizer, tasks, configs)
    lengths = [max(1, row["generated_tokens"]) for row in runs["off"].rows]
    prompts = [tokenizer.encode_prompt(t["prompt"]) for t in tasks]
    rule = lines_without_stops(tokenizer)
    wall = {"off": float("inf"), "on": float("inf")}
    tokens = sum(lengths)
    for _ in range(repeats):
        for name, guidance in (("off", "off"), ("on", guided)):
            seconds, generated, _ = fixed_length_run(model, rule, prompts, lengths, guidance, batch_size)
            if generated != tokens:
                raise RuntimeError(f"guidance {guidance} generated {generated} tokens, not the {tokens} asked for")
            wall[name] = min(wall[name], seconds)
    off, on = tokens / wall["off"], tokens / wall["on"]
    free_off, free_on = runs["off"].tokens_per_s, runs["on"].tokens_per_s
    return {
        "tokens_per_s_off": off, "tokens_per_s_on": on, "overhead": 1.0 - on / off, "guidance_on": guided,
        "free_running": {"tokens_per_s_off": free_off, "tokens_per_s_on": free_on, "overhead": 1.0 - free_on / free_off,
                         "accuracy_off": runs["off"].accuracy, "accuracy_on": runs["on"].accuracy,
                         "generated_tokens_off": runs["off"].generated_tokens,
                         "generated_tokens_on": runs["on"].generated_tokens},
    }


def lines_without_stops(tokenizer) -> StopRule:
    """The tokenizer's newlines end steps; nothing ends a sequence (no EOS, no answer line)."""
    return StopRule(newline_ids=StopRule.from_tokenizer(tokenizer).newline_ids, eos_ids=frozenset(), decode=lambda ids: "")


def fixed_length_run(model, rule: StopRule, prompts, lengths, guidance: str, batch_size: int) -> tuple[float, int, int]:
    """(seconds, tokens generated, steps committed) for every prompt to generate exactly its
    length, greedily, under `guidance` (boundaries committed at its newlines when guidance is
    on, as the CoT loop commits them), shortest prompt first as solve_prompts submits."""
    seconds, seqs = run_fixed_lengths(model, list(zip(prompts, lengths)), batch_size, rule=rule, guidance=guidance,
                                      shortest_first=True)
    return seconds, sum(len(s.output_ids) for s in seqs), sum(len(s.step_heats) for s in seqs)
