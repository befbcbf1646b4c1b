"""Tokenizer of a model folder (`tokenizer.json`, read with the `tokenizers` library: no code
from the checkpoint is ever run)."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer

from .config import ModelConfig, ModelLoadError


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, cfg: ModelConfig) -> None:
        self.tokenizer = tokenizer
        self.bos_token_id = cfg.bos_token_id
        self.eos_token_ids = list(cfg.eos_token_ids)

    @classmethod
    def from_folder(cls, folder: str | Path, cfg: ModelConfig) -> "TextTokenizer":
        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise ModelLoadError(f"{folder}: missing tokenizer.json")
        try:
            return cls(Tokenizer.from_file(str(path)), cfg)
        except Exception as exc:
            raise ModelLoadError(f"{path}: unreadable tokenizer ({type(exc).__name__})") from None

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_prompt(self, prompt: str) -> list[int]:
        """Model input for a task: [bos] + prompt + newline (the step separator)."""
        ids = self.encode(prompt.rstrip("\n") + "\n")
        return ([self.bos_token_id] if self.bos_token_id is not None else []) + ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @cached_property
    def newline_token_ids(self) -> frozenset[int]:
        """Every token whose text contains a newline: these end a reasoning step."""
        ids = set()
        for token, idx in self.tokenizer.get_vocab().items():
            text = self.tokenizer.decode([idx], skip_special_tokens=True)
            if "\n" in text:
                ids.add(idx)
        return frozenset(ids)
