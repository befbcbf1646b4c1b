"""Reading the final answer out of generated text, GSM8K style.

Why a normaliser: greedy outputs differ from references in harmless ways ("017", " 1 000",
"Yes", "12."); accuracy should count those as correct and nothing else.
"""
from __future__ import annotations

import re

ANSWER_MARK = "####"
_INTEGER = re.compile(r"[+-]?\d+")


def normalize_answer(text: str) -> str:
    """Strip, drop one trailing '.', remove spaces/commas inside integers ('1 000' -> '1000',
    '017' -> '17', '-0' -> '0'); anything that is not an integer is lowercased ('Yes' -> 'yes')."""
    s = text.strip()
    if s.endswith("."):
        s = s[:-1].rstrip()
    compact = re.sub(r"[\s,]", "", s)
    if _INTEGER.fullmatch(compact):
        return str(int(compact))
    return s.lower()


def extract_answer(text: str) -> str | None:
    """The normalised answer on the line after the last '####', or None if there is none."""
    at = text.rfind(ANSWER_MARK)
    if at < 0:
        return None
    rest = text[at + len(ANSWER_MARK):].lstrip("#").split("\n", 1)[0]
    answer = normalize_answer(rest)
    return answer or None


def answers_match(pred: str | None, ref: str) -> bool:
    """True when a predicted answer (e.g. from extract_answer; None never matches) equals ref."""
    if pred is None:
        return False
    return normalize_answer(pred) == normalize_answer(ref)
