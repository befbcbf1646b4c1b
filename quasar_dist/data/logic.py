"""If-then rule chains: does a queried proposition follow from the facts?

Every prompt holds two chains of rules over distinct single-word propositions ("rain", "ice"):
the asked chain of `hops` rules, ending in the queried proposition, and a distractor chain.
Exactly one of them is rooted in a fact: the asked one for `yes`, the distractor for `no`. An
optional second fact triggers nothing. Both answers look alike on the surface (same rule count,
the queried proposition is always some rule's conclusion), so the model has to follow the chain.

Facts and rules are written as pairs "X Y." read "X holds if Y holds"; a fact is the pair
"X true." (a rule whose body is `true`, as in logic programming). The solution chains backward
from the question, one lookup per line: "need X Y" where Y is the body of X's pair, until Y is
`true` (then `#### yes`) or X has no pair at all ("need X none", then `#### no`). That is
`hops + 1` lines in both cases.

Why this shape (docs/training.md, "Why logic stayed at chance"): a 0.9M model learns "find the
token I am on and copy the one right after it" (an induction head) in ~1,200 steps, but stays at
chance for 2,000+ steps when even one token separates the two ("if A then B", "A so B"). Here
every decision is that lookup or a copy of the previous token: the key is written just before
its body in the prompt and in each step, the next line starts from the body just written, and
both ends (`true`, `none`) are the lookup's own result. A forward-chaining format needs two
membership tests instead (does any rule start with the last conclusion? was the asked
proposition derived?), and the model did not learn them in 3,000 steps.
"""
from __future__ import annotations

import random

from quasar_dist.data.vocab import PROPOSITIONS

MIN_HOPS, MAX_HOPS = 2, 5
MAX_RULES = 6  # keeps 5-hop prompts short in tokens
HEADER = "Rules (each pair: the first holds if the second holds):"


def _fresh(rng: random.Random, used: set[str]) -> str:
    atom = rng.choice([a for a in PROPOSITIONS if a not in used])
    used.add(atom)
    return atom


def make_logic_problem(rng: random.Random, hops: int, answer: str) -> dict[str, str]:
    """One problem whose asked chain has `hops` rules and whose answer is `answer` ('yes'/'no')."""
    segments, solution, answer, _ = make_logic_parts(rng, hops, answer)
    return {"prompt": " ".join(text for text, _, _ in segments), "solution": solution, "answer": answer}


def make_logic_parts(rng: random.Random, hops: int, answer: str):
    """(segments [(text, relevant, section)], solution, answer, asked chain). Relevant: the
    asked chain's rules, its root fact (answer yes) and the question. The section headers are
    the same in every prompt, so no solution needs them: they are not relevant. Sections:
    facts, rules, question (the headers open their sections)."""
    if not MIN_HOPS <= hops <= MAX_HOPS:
        raise ValueError(f"logic hops must be in {MIN_HOPS}..{MAX_HOPS}, got {hops}")
    if answer not in ("yes", "no"):
        raise ValueError(f"logic answer must be 'yes' or 'no', got {answer!r}")
    used: set[str] = set()
    asked_chain = [_fresh(rng, used) for _ in range(hops + 1)]  # root first, asked last
    other_len = rng.randint(1, max(1, min(3, MAX_RULES - hops)))
    other_chain = [_fresh(rng, used) for _ in range(other_len + 1)]
    facts = [asked_chain[0] if answer == "yes" else other_chain[0]]
    if rng.random() < 0.4:  # a second fact that triggers nothing
        facts.append(_fresh(rng, used))
        rng.shuffle(facts)
    rules = [(c, p) for chain in (asked_chain, other_chain) for p, c in zip(chain, chain[1:])]
    rng.shuffle(rules)
    asked = asked_chain[-1]
    on_chain = set(asked_chain)
    segments = (
        [("Facts:", False, "facts")] + [(f"{f} true.", f in on_chain, "facts") for f in facts]
        + [(HEADER, False, "rules")] + [(f"{head} {body}.", head in on_chain, "rules") for head, body in rules]
        + [("Question:", False, "question"), (f"does {asked} hold?", True, "question")]
    )
    chain = asked_chain[::-1]  # asked first
    root_body = "true" if answer == "yes" else "none"
    steps = [f"need {head} {body}" for head, body in zip(chain, chain[1:])] + [f"need {chain[-1]} {root_body}"]
    return segments, "\n".join(steps + [f"#### {answer}"]), answer, asked_chain
