"""If-then rule chains: does a queried fact follow from the facts?

Every prompt holds two chains of rules over distinct atoms ("the cat is red", "the owl sings"):
a live chain of `hops` rules rooted in a fact, and a dead chain whose first premise is never
derived. A `yes` problem asks about the end of the live chain, a `no` problem about the end of
the dead chain. Why this shape: both answers look alike on the surface (same rule count, the
queried fact is always some rule's conclusion), so the model has to track the chain instead of
a shortcut. The solution forward-chains from the facts, one hop per line ("A so B"), until no
rule fires, then answers `#### yes` or `#### no`; it has `hops` lines in both cases.

Near misses make the matching non-trivial: the dead chain's root often shares the animal of a
derived atom, and an optional second fact may share the animal of the dead root.
"""
from __future__ import annotations

import random

from quasar_dist.data.vocab import ADJECTIVES, ANIMALS, VERBS

MIN_HOPS, MAX_HOPS = 2, 5
MAX_RULES = 6  # keeps 5-hop prompts short in tokens

Atom = tuple[str, str]  # (animal, predicate): predicate is an adjective or a verb's 3rd person
_BASE_FORM = dict(VERBS)
_PREDICATES = ADJECTIVES + tuple(_BASE_FORM)
_ALL_ATOMS: tuple[Atom, ...] = tuple((a, p) for a in ANIMALS for p in _PREDICATES)


def statement(atom: Atom) -> str:
    """'the cat is red' or 'the owl sings'."""
    animal, pred = atom
    return f"the {animal} {pred}" if pred in _BASE_FORM else f"the {animal} is {pred}"


def question(atom: Atom) -> str:
    """'is the cat red?' or 'does the owl sing?'."""
    animal, pred = atom
    if pred in _BASE_FORM:
        return f"does the {animal} {_BASE_FORM[pred]}?"
    return f"is the {animal} {pred}?"


def _fresh(rng: random.Random, used: set[Atom], near: Atom | None = None) -> Atom:
    """An unused atom; with `near`, one sharing its animal when possible."""
    pool = [a for a in _ALL_ATOMS if a not in used]
    if near is not None:
        close = [a for a in pool if a[0] == near[0]]
        pool = close or pool
    atom = rng.choice(pool)
    used.add(atom)
    return atom


def make_logic_problem(rng: random.Random, hops: int, answer: str) -> dict[str, str]:
    """One problem whose live chain has `hops` rules and whose answer is `answer` ('yes'/'no')."""
    if not MIN_HOPS <= hops <= MAX_HOPS:
        raise ValueError(f"logic hops must be in {MIN_HOPS}..{MAX_HOPS}, got {hops}")
    if answer not in ("yes", "no"):
        raise ValueError(f"logic answer must be 'yes' or 'no', got {answer!r}")
    used: set[Atom] = set()
    live = [_fresh(rng, used) for _ in range(hops + 1)]
    dead_len = rng.randint(1, max(1, min(3, MAX_RULES - hops)))
    near = rng.choice(live) if rng.random() < 0.5 else None
    dead = [_fresh(rng, used, near)] + [_fresh(rng, used) for _ in range(dead_len)]
    facts = [live[0]]
    if rng.random() < 0.4:  # a second fact that triggers nothing
        facts.append(_fresh(rng, used, dead[0] if rng.random() < 0.5 else None))
        rng.shuffle(facts)
    rules = list(zip(live, live[1:])) + list(zip(dead, dead[1:]))
    rng.shuffle(rules)
    asked = live[-1] if answer == "yes" else dead[-1]
    prompt = " ".join(
        ["Facts:"] + [statement(f) + "." for f in facts]
        + ["Rules:"] + [f"if {statement(p)} then {statement(c)}." for p, c in rules]
        + ["Question:", question(asked)])
    steps = [f"{statement(p)} so {statement(c)}" for p, c in zip(live, live[1:])]
    return {"prompt": prompt, "solution": "\n".join(steps + [f"#### {answer}"]), "answer": answer}
