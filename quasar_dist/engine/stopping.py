"""Token-level stop rules: end of text, the end of the answer line, and the step delimiter."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

ANSWER_MARK = "####"


@dataclass(frozen=True, slots=True)
class StopRule:
    newline_ids: frozenset[int]
    """Tokens that end a line (a reasoning step)."""
    eos_ids: frozenset[int]
    """Tokens that end the output."""
    decode: Callable[[list[int]], str]
    """Token ids -> text; only called once per finished line."""
    answer_mark: str = ANSWER_MARK
    """A line starting with this is the answer line (GSM8K format)."""

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "StopRule":
        """From a `TextTokenizer` (or anything with newline_token_ids, eos_token_ids, decode)."""
        return cls(
            newline_ids=frozenset(tokenizer.newline_token_ids),
            eos_ids=frozenset(tokenizer.eos_token_ids),
            decode=tokenizer.decode,
        )

    def is_answer_line(self, line_ids: list[int]) -> bool:
        # Decoded text, not token ids: the model may spell the mark with any token split.
        return self.decode(line_ids).lstrip().startswith(self.answer_mark)
