"""A small byte-level BPE tokenizer trained on the task texts.

Why these choices:
- byte-level (ByteLevel pre-tokenizer and decoder, add_prefix_space=False, the full 256-byte
  alphabet): decode(encode(text)) == text exactly, for any text, with no <unk> ever produced;
- "\n" isolated: every solution step ends in the same single token, so step boundaries are
  explicit for the model and for stopping rules;
- digits split one per token: numbers are spelled digit by digit, so arithmetic is learnable
  instead of memorising a token per number;
- a closed task vocabulary: 512 entries are more than enough (about 430 get used), so every
  word of vocab.py becomes one token; token lengths per kind and step count are in docs/data.md.
Special tokens have fixed ids: <pad>=0, <bos>=1, <eos>=2, <unk>=3. Nothing is added
automatically; the caller wraps sequences in <bos> ... <eos>.
"""
from __future__ import annotations

from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Tokenizer:
    """Train a byte-level BPE tokenizer of at most `vocab_size` entries on `texts`."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == expected_id, (token, tokenizer.token_to_id(token))
    return tokenizer
