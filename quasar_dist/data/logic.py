"""If-then rule chains: does a queried proposition follow from the facts?

Every prompt holds two chains of rules over distinct single-word propositions ("rain", "ice"):
a live chain of `hops` rules rooted in a fact, and a dead chain whose first premise is never
derived. A `yes` problem asks about the end of the live chain, a `no` problem about the end of
the dead chain. Why this shape: both answers look alike on the surface (same rule count, the
queried proposition is always some rule's conclusion), so the model has to track the chain
instead of a shortcut. The solution forward-chains from the facts, one hop per line
("rain so ice"), until no rule fires, then answers `#### yes` or `#### no`; it has `hops` lines
in both cases. An optional second fact triggers nothing (a distractor), as do the dead rules.
"""
from __future__ import annotations

import random

from quasar_dist.data.vocab import PROPOSITIONS

MIN_HOPS, MAX_HOPS = 2, 5
MAX_RULES = 6  # keeps 5-hop prompts short in tokens


def _fresh(rng: random.Random, used: set[str]) -> str:
    atom = rng.choice([a for a in PROPOSITIONS if a not in used])
    used.add(atom)
    return atom


def make_logic_problem(rng: random.Random, hops: int, answer: str) -> dict[str, str]:
    """One problem whose live chain has `hops` rules and whose answer is `answer` ('yes'/'no')."""
    if not MIN_HOPS <= hops <= MAX_HOPS:
        raise ValueError(f"logic hops must be in {MIN_HOPS}..{MAX_HOPS}, got {hops}")
    if answer not in ("yes", "no"):
        raise ValueError(f"logic answer must be 'yes' or 'no', got {answer!r}")
    used: set[str] = set()
    live = [_fresh(rng, used) for _ in range(hops + 1)]
    dead_len = rng.randint(1, max(1, min(3, MAX_RULES - hops)))
    dead = [_fresh(rng, used) for _ in range(dead_len + 1)]
    facts = [live[0]]
    if rng.random() < 0.4:  # a second fact that triggers nothing
        facts.append(_fresh(rng, used))
        rng.shuffle(facts)
    rules = list(zip(live, live[1:])) + list(zip(dead, dead[1:]))
    rng.shuffle(rules)
    asked = live[-1] if answer == "yes" else dead[-1]
    prompt = " ".join(
        ["Facts:"] + [f"{f}." for f in facts]
        + ["Rules:"] + [f"if {p} then {c}." for p, c in rules]
        + ["Question:", f"is {asked} true?"])
    steps = [f"{p} so {c}" for p, c in zip(live, live[1:])]
    return {"prompt": prompt, "solution": "\n".join(steps + [f"#### {answer}"]), "answer": answer}
