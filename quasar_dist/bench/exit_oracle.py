"""How much could any early-exit rule save on our tasks? (issue #15, item 4: measure the
ceiling before claiming a saving.)

Every task runs the CoT loop (guidance off, greedy) with a trial answer at every step boundary,
the prompt's included: the forced "####" probe the GSoT loop uses, whose result is recorded and
then discarded (the run continues as if nothing happened, so its final answer is CoT's). The
oracle exits each task at the earliest boundary whose probe answer is right and stays right at
every later boundary; a task CoT gets wrong can exit at once (nothing to lose). The ceiling is
the share of generated tokens after those exits; probe tokens are not charged (an oracle needs
no probe). No real rule reaches it: it is what DEER- or Dynasor-style exits could at best save.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from quasar_dist.data.answers import answers_match
from quasar_dist.engine import Engine, SamplingParams, Sequence, StopRule
from quasar_dist.engine.stopping import ANSWER_MARK
from quasar_dist.reasoning.steps import output_answer, probe_answer


@dataclass(slots=True)
class _Track:
    reference: str
    probes: list[tuple[int, str | None]] = field(default_factory=list)  # (tokens generated so far, answer)
    final: str | None = None
    generated: int = 0


def exit_oracle(model, tokenizer, tasks: list[dict], *, max_new_tokens: int, num_slots: int, probe_tokens: int = 8) -> dict:
    mark = tokenizer.encode(ANSWER_MARK)
    before = model.guidance
    model.guidance = "off"
    try:
        engine = Engine(model, StopRule.from_tokenizer(tokenizer), num_slots=num_slots)
        tracks = _run(engine, tokenizer, tasks, mark, max_new_tokens, probe_tokens)
    finally:
        model.guidance = before
    return _ceiling(tracks)


def _run(engine, tokenizer, tasks, mark, max_new_tokens, probe_tokens) -> list[_Track]:
    tracks = [_Track(reference=t["answer"]) for t in tasks]
    for i, task in enumerate(tasks):
        engine.add(Sequence(i, tokenizer.encode_prompt(task["prompt"]), SamplingParams(),
                            max_new_tokens=max_new_tokens, pause_at_boundaries=True, commit_steps=False))
    while engine.has_work():
        for seq in engine.step():
            track = tracks[seq.seq_id]
            if seq.event.value == "boundary":
                engine.probe(seq, mark, probe_tokens)
            elif seq.event.value == "probed":
                answer = probe_answer(tokenizer, mark, seq.probe_result.token_ids) if seq.probe_result.complete else None
                track.probes.append((seq.counters.generated_tokens, answer))
                engine.resume(seq)
            else:
                track.final, track.generated = output_answer(tokenizer, seq.output_ids), seq.counters.generated_tokens
                engine.release(seq)
    return tracks


def _ceiling(tracks: list[_Track]) -> dict:
    total = sum(t.generated for t in tracks)
    saved, saved_on_correct, exits_right, correct = 0, 0, 0, 0
    for t in tracks:
        if not answers_match(t.final, t.reference):
            saved += t.generated  # wrong anyway: exit at once
            continue
        correct += 1
        before = saved
        right = [answers_match(a, t.reference) for _, a in t.probes]
        earliest = next((k for k in range(len(right)) if all(right[k:])), None)
        if earliest is not None:
            exits_right += 1
            saved += t.generated - t.probes[earliest][0]
        saved_on_correct += saved - before
    return {
        "tasks": len(tracks),
        "accuracy": correct / max(1, len(tracks)),
        "generated_tokens": total,
        "oracle_token_saving": saved / max(1, total),
        "oracle_token_saving_correct_tasks_only": saved_on_correct / max(1, total),
        "correct_tasks_with_a_stable_early_answer": exits_right / max(1, correct),
        "first_step_probe_accuracy": sum(answers_match(t.probes[0][1], t.reference) for t in tracks if t.probes)
        / max(1, len(tracks)),
    }
