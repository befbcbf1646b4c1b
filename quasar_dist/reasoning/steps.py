"""Turning output token ids into the row's text fields: steps (lines) and the answer."""
from __future__ import annotations

from quasar_dist.data.answers import extract_answer
from quasar_dist.engine.stopping import ANSWER_MARK


def split_lines(ids: list[int], newline_ids: frozenset[int], eos_ids: frozenset[int]) -> list[list[int]]:
    """Lines of tokens, each ending with its newline token; a trailing partial line is kept."""
    lines, line = [], []
    for token in ids:
        if token in eos_ids:
            break
        line.append(token)
        if token in newline_ids:
            lines.append(line)
            line = []
    if line:
        lines.append(line)
    return lines


def output_steps(tokenizer, ids: list[int]) -> list[str]:
    """Step strings (newline stripped) without the answer line and anything after it."""
    steps = []
    for line in split_lines(ids, tokenizer.newline_token_ids, frozenset(tokenizer.eos_token_ids)):
        text = tokenizer.decode(line)
        if text.lstrip().startswith(ANSWER_MARK):
            break
        steps.append(text.rstrip())  # the newline, and a tokenizer's space before it
    return steps


def output_answer(tokenizer, ids: list[int]) -> str | None:
    """The normalised answer of the model's own "####" line, or None."""
    return extract_answer(tokenizer.decode(ids))


def probe_answer(tokenizer, mark_ids: list[int], answer_ids: tuple[int, ...]) -> str | None:
    """The normalised answer of a probe: the forced mark plus its greedy continuation."""
    return extract_answer(tokenizer.decode(list(mark_ids) + list(answer_ids)))
