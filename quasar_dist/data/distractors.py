"""Distractor-heavy tasks with ground-truth relevance (issue #14, part 1).

`make_distracted(kind, rng, level, distractors)` builds the same problems as arith.py and
logic.py, then mixes `distractors` irrelevant sentences into the prompt (GSM-IC / GSM-DC style:
plausible, drawn from the task's own vocabulary, never needed by the solution), and records which
character spans of the prompt the solution needs (`relevant_spans`, the question included):

- arith: every fact about the asked quantity (its owner's sentences) and the question are
  relevant. Distractors: other people or places with the same kinds of events ("Ben buys 4 more
  pens."), ages, the same object owned by someone else: a reader has to track the subject.
- logic: the asked chain's rules, its root fact (answer yes), the section headers and the question
  are relevant. Distractors: the existing second chain and the fact that triggers nothing, plus
  `distractors` rules whose heads are never on the asked chain (so the backward lookup from the
  question never reaches them; their bodies may be anything), and extra facts of propositions off
  the asked chain.

The solution text is exactly the undistracted problem's: the distractors change what the model
must ignore, not what it must write. Splits hash the *core* prompt (the problem before
distractors are mixed in), so one problem never lands in two splits with different distractors.
"""
from __future__ import annotations

import random

from quasar_dist.data.arith import make_arith_parts
from quasar_dist.data.logic import make_logic_parts
from quasar_dist.data.vocab import CONTAINERS, NAMES, OBJECTS, PLACES, PROPOSITIONS

ARITH_DISTRACTORS = (
    "{n} has {b} {o}.", "{n} buys {b} more {o}.", "{n} sells {b} {o}.", "{n} is {b} years old.",
    "{n} finds {b} more {o}.", "{n} gives {b} {o} to {m}.", "{n} buys {b} {c} of {k} {o}.",
    "The {p} has {b} {o}.", "{n} has {b} {c} of {k} {o}.",
)


def make_distracted(kind: str, rng: random.Random, level: int, answer: str, distractors: int) -> dict | None:
    """A task dict (prompt, solution, answer, core, relevant_spans) or None (retry this draw)."""
    if kind == "arith":
        parts = make_arith_parts(rng, steps=level)
        if parts is None:
            return None
        segments, solution, answer_text, subject = parts
        noise = [(_arith_sentence(rng, subject), "facts") for _ in range(distractors)]
    else:
        segments, solution, answer_text, chain = make_logic_parts(rng, hops=level, answer=answer)
        noise = _logic_sentences(rng, chain, distractors)
    core = " ".join(text for text, _, _ in segments)
    prompt, spans = _join(_mix(rng, segments, noise))
    return {"prompt": prompt, "solution": solution, "answer": answer_text, "core": core, "relevant_spans": spans}


def _mix(rng: random.Random, segments: list[tuple[str, bool, str]], noise: list[tuple[str, str]]):
    """Insert each noise sentence at a random place of its section (a rule among the rules, a
    fact among the facts; never before a section's header, never into the question)."""
    out = list(segments)
    for sentence, section in noise:
        at = [i for i, (_, _, sec) in enumerate(out) if sec == section]
        first = at[0] + 1 if out[at[0]][0].endswith(":") else at[0]  # after the section's header
        out.insert(rng.randint(first, at[-1] + 1), (sentence, False, section))
    return out


def _join(segments: list[tuple[str, bool, str]]) -> tuple[str, list[dict[str, int]]]:
    """Join with single spaces; the [start, end) character span of each relevant segment
    (adjacent relevant segments merge into one span)."""
    spans, at, pieces = [], 0, []
    for text, relevant, _ in segments:
        if pieces:
            at += 1  # the separating space
        start, at = at, at + len(text)
        pieces.append(text)
        if relevant:
            if spans and spans[-1]["end"] == start - 1:
                spans[-1]["end"] = at
            else:
                spans.append({"start": start, "end": at})
    return " ".join(pieces), spans


def _arith_sentence(rng: random.Random, subject: str) -> str:
    """One plausible irrelevant sentence: never about the asked subject."""
    others = [n for n in NAMES if n != subject]
    places = [p for p in PLACES if f"The {p}" != subject]
    template = rng.choice(ARITH_DISTRACTORS if places else ARITH_DISTRACTORS[:-2] + ARITH_DISTRACTORS[-1:])
    n, m = rng.sample(others, 2)
    return template.format(n=n, m=m, b=rng.randint(2, 20), o=rng.choice(OBJECTS), c=rng.choice(CONTAINERS),
                           k=rng.randint(2, 10), p=rng.choice(places) if places else "")


def _logic_sentences(rng: random.Random, chain: list[str], count: int) -> list[tuple[str, str]]:
    """Rules whose head is off the asked chain (never looked up), and, one in five, a fact of a
    proposition off the chain (a fact only matters if the chain reaches it)."""
    off_chain = [p for p in PROPOSITIONS if p not in chain]
    out = []
    for _ in range(count):
        if rng.random() < 0.2:
            out.append((f"{rng.choice(off_chain)} true.", "facts"))
        else:
            head = rng.choice(off_chain)
            out.append((f"{head} {rng.choice([p for p in PROPOSITIONS if p != head])}.", "rules"))
    return out
