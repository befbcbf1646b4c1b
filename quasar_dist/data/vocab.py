"""The closed vocabulary of both task kinds.

Why closed and small: a ~1-3M parameter model with a 512-entry BPE vocabulary must see every word
often, and every word should be a single token (see tokenizer_build.py). Adding a word here costs
BPE merges; keep the lists short.
"""
from __future__ import annotations

# --- arith ---------------------------------------------------------------------------------
NAMES = ("Tom", "Ann", "Bob", "Sam", "Mia", "Ben")
OBJECTS = ("apples", "pens", "books", "eggs", "cards", "coins")
PLACES = ("shop", "farm")  # "The shop has ...", asked as "the shop"
CONTAINERS = ("bags", "boxes")

# --- logic ---------------------------------------------------------------------------------
ANIMALS = ("cat", "dog", "fox", "owl", "bird", "frog", "bear")
ADJECTIVES = ("red", "big", "calm", "cold", "kind", "green")
# verb predicate: (statement form, question form) -> "the owl sings" / "does the owl sing?"
VERBS = (("sings", "sing"), ("runs", "run"))
