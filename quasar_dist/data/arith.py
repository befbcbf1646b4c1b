"""Multi-step arithmetic word problems (GSM8K's shape, tiny numbers).

One problem follows one quantity (a person's or a place's objects) through 2..5 operations.
Every operation is one solution line `a op b = c`; the running total is always the left operand,
so the model reads the facts in order and never has to reorder them. Why so regular: a ~1-3M
parameter model trained for minutes must learn the procedure, not the language.

Numbers stay small so the arithmetic itself is learnable: added/subtracted amounts 2..20,
products of at most 6 * 10 or 20 * 5 (< 100), every intermediate result in 0..MAX_VALUE-1.
About half the problems get 1-2 distractor sentences (GSM-IC style: other people, numbers that
must be ignored), passed in by the caller.
"""
from __future__ import annotations

import random

from quasar_dist.data.vocab import CONTAINERS, NAMES, OBJECTS, PLACES

MAX_VALUE = 200  # every intermediate result r satisfies 0 <= r < MAX_VALUE
MIN_STEPS, MAX_STEPS = 2, 5

_ADD = ("{s} buys {b} more {o}.", "{s} finds {b} more {o}.", "{s} gets {b} more {o}.")
_SUB = ("{s} gives {b} {o} to {n}.", "{s} sells {b} {o}.", "{s} loses {b} {o}.")
_TIMES = ("{s} now has {k} times as many {o}.",)
_BAGS_ADD = ("{s} buys {b} {c} of {k} {o}.", "{s} gets {b} {c} of {k} {o}.")
_BAGS_SUB = ("{s} sells {b} {c} of {k} {o}.", "{s} gives {b} {c} of {k} {o} to {n}.")
_DISTRACTORS = ("{n} has {b} {o}.", "{n} buys {b} {o}.", "{n} is {b} years old.")


class _Builder:
    """Collects fact sentences and solution lines while tracking the running total."""

    def __init__(self, rng: random.Random, subject: str, protagonist: str, obj: str):
        self.rng, self.subject, self.obj = rng, subject, obj
        self.others = [n for n in NAMES if n != protagonist]
        self.facts: list[str] = []
        self.steps: list[str] = []
        self.total = 0

    def say(self, templates: tuple[str, ...], **numbers: int) -> None:
        template = self.rng.choice(templates)
        self.facts.append(template.format(s=self.subject, o=self.obj, n=self.rng.choice(self.others),
                                          c=self.rng.choice(CONTAINERS), **numbers))

    def step(self, a: int, op: str, b: int) -> int:
        c = {"+": a + b, "-": a - b, "*": a * b}[op]
        assert 0 <= c < MAX_VALUE, (a, op, b, c)
        self.steps.append(f"{a} {op} {b} = {c}")
        return c


def _bag_numbers(rng: random.Random) -> tuple[int, int]:
    return rng.randint(2, 6), rng.randint(2, 10)


def _event(p: _Builder, cost_left: int) -> bool:
    """Append one feasible event costing <= cost_left steps; False if none fits."""
    x, rng = p.total, p.rng
    options = []
    if x + 2 < MAX_VALUE:
        options.append("add")
    if x >= 2:
        options.append("sub")
    if 2 <= x <= 20 and x * 2 < MAX_VALUE:
        options.append("times")
    if cost_left >= 2 and x + 4 < MAX_VALUE:
        options.append("bags_add")
    if cost_left >= 2 and x >= 4:
        options.append("bags_sub")
    if not options:
        return False
    kind = rng.choice(options)
    if kind == "add":
        b = rng.randint(2, min(20, MAX_VALUE - 1 - x))
        p.say(_ADD, b=b)
        p.total = p.step(x, "+", b)
    elif kind == "sub":
        b = rng.randint(2, min(20, x))
        p.say(_SUB, b=b)
        p.total = p.step(x, "-", b)
    elif kind == "times":
        k = rng.randint(2, min(5, (MAX_VALUE - 1) // x))
        p.say(_TIMES, k=k)
        p.total = p.step(x, "*", k)
    else:
        adding = kind == "bags_add"
        while True:
            b, k = _bag_numbers(rng)
            if (x + b * k < MAX_VALUE) if adding else (b * k <= x):
                break
        p.say(_BAGS_ADD if adding else _BAGS_SUB, b=b, k=k)
        product = p.step(b, "*", k)
        p.total = p.step(x, "+" if adding else "-", product)
    return True


def make_arith_parts(rng: random.Random, steps: int):
    """The problem before any distractor: (segments [(text, relevant, section)], solution,
    answer, subject), or None if this draw got stuck (retry). Sections: facts, question."""
    p = _build(rng, steps)
    if p is None:
        return None
    builder, question = p
    segments = [(f, True, "facts") for f in builder.facts] + [(question, True, "question")]
    return segments, _solution(builder), str(builder.total), builder.subject


def make_arith_problem(rng: random.Random, steps: int, distractors: bool) -> dict[str, str] | None:
    """One problem with exactly `steps` solution lines, or None if this draw got stuck (retry)."""
    built = _build(rng, steps)
    if built is None:
        return None
    p, question = built
    if distractors:
        for _ in range(rng.randint(1, 2)):
            sentence = rng.choice(_DISTRACTORS).format(
                n=rng.choice(p.others), b=rng.randint(2, 20), o=rng.choice(OBJECTS))
            p.facts.insert(rng.randint(0, len(p.facts)), sentence)
    return {"prompt": " ".join(p.facts + [question]), "solution": _solution(p), "answer": str(p.total)}


def _build(rng: random.Random, steps: int) -> tuple[_Builder, str] | None:
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise ValueError(f"arith steps must be in {MIN_STEPS}..{MAX_STEPS}, got {steps}")
    if rng.random() < 0.7:
        protagonist = rng.choice(NAMES)
        subject = asked = protagonist
    else:
        protagonist = rng.choice(PLACES)
        subject, asked = f"The {protagonist}", f"the {protagonist}"
    obj = rng.choice(OBJECTS)
    p = _Builder(rng, subject, protagonist, obj)
    if rng.random() < 0.3:  # the starting amount itself is a product: one step
        b, k = _bag_numbers(rng)
        p.facts.append(f"{subject} has {b} {rng.choice(CONTAINERS)} of {k} {obj}.")
        p.total = p.step(b, "*", k)
    else:
        p.total = rng.randint(2, 20)
        p.facts.append(f"{subject} has {p.total} {obj}.")
    while len(p.steps) < steps:
        if not _event(p, steps - len(p.steps)):
            return None
    return p, f"How many {obj} does {asked} have now?"


def _solution(p: _Builder) -> str:
    return "\n".join(p.steps + [f"#### {p.total}"])
