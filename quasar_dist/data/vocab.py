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
# Propositions are single words ("rain", "wind"), each one token: a rule lookup is a one-token
# match ("rain so ..." -> "if rain then X"). The first version used two-token atoms ("the fox is
# red") with near misses sharing the animal; a 0.9M model trained for 25 min on 2 cores learned
# arithmetic (78%) but stayed at chance on those (docs/training.md).
PROPOSITIONS = (
    "rain", "wind", "snow", "fog", "sun", "storm", "frost", "heat", "mud", "ice",
    "smoke", "dust", "fire", "flood", "cloud", "dew", "hail", "mist", "sand", "rock",
    "leaf", "seed", "moss", "bark", "root", "vine", "salt", "wax", "silk", "wool",
)
