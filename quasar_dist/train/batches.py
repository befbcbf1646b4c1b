"""Tasks -> token tensors: input ids, step (segment) ids and the loss mask."""
from __future__ import annotations

import torch

from quasar_dist.bench.relevance import offset_labels
from quasar_dist.data.tokenizer_build import BOS_ID, EOS_ID, PAD_ID


def encode_task(tokenizer, task: dict, labels: bool = False) -> tuple[list[int], int, list[int] | None]:
    """[bos] prompt "\n" solution [eos]: the ids, the prompt length (incl. its newline), and
    with `labels`, from the same prompt encoding, a label per prompt token, BOS included: 1
    relevant, 0 distractor, -1 unlabelled (BOS, the closing newline, every token of a task
    without `relevant_spans`); else None."""
    enc = tokenizer.encode(task["prompt"] + "\n", add_special_tokens=False)
    prompt = [BOS_ID] + enc.ids
    solution = tokenizer.encode(task["solution"], add_special_tokens=False).ids + [EOS_ID]
    relevance = None
    if labels:
        spans = task.get("relevant_spans")
        relevance = [-1] * len(prompt) if spans is None else [-1] + [
            -1 if label is None else label for label in offset_labels(enc.offsets, task["prompt"], spans)]
    return prompt + solution, len(prompt), relevance


def collate_relevance(labels: list[list[int]], length: int) -> torch.Tensor:
    """Right-pad per-prompt relevance labels to [B, length] with -1 (unlabelled)."""
    out = torch.full((len(labels), length), -1, dtype=torch.int8)
    for i, row in enumerate(labels):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.int8)
    return out


def segment_ids_for(ids: torch.Tensor, prompt_len: torch.Tensor, newline_id) -> torch.Tensor:
    """Segment 0 is the prompt; each solution line (its newline included) is the next segment.
    ids [B, T], prompt_len [B] -> [B, T]. newline_id: the newline token, or every token whose
    text holds a newline (TextTokenizer.newline_token_ids, for BPE vocabularies that merge them)."""
    t = ids.shape[1]
    in_solution = torch.arange(t)[None, :] >= prompt_len[:, None]
    newline_ids = torch.tensor(sorted(newline_id) if isinstance(newline_id, (set, frozenset, list, tuple)) else [newline_id])
    newline = torch.isin(ids, newline_ids) & in_solution
    before = newline.long().cumsum(1) - newline.long()  # newlines strictly before t
    return in_solution.long() + before


def collate(encoded: list[tuple[list[int], int]], newline_id: int):
    """Right-pad a batch; loss on solution tokens only (targets shifted by one)."""
    t = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), t), PAD_ID, dtype=torch.long)
    loss_mask = torch.zeros(len(encoded), t, dtype=torch.bool)
    prompt_len = torch.tensor([p for _, p in encoded])
    for i, (seq, p) in enumerate(encoded):
        ids[i, : len(seq)] = torch.tensor(seq)
        loss_mask[i, p - 1 : len(seq) - 1] = True  # position t predicts token t+1
    return ids, segment_ids_for(ids, prompt_len, newline_id), loss_mask


def length_grouped_batches(lengths: list[int], batch_size: int, rng, pool_batches: int = 32):
    """Endless batches of indices: shuffle, then sort each pool of `pool_batches` batches by
    length and cut it, so a batch pads to similar lengths (distractor tasks range from ~40 to
    ~450 tokens); the batches of a pool come in random order."""
    order = list(range(len(lengths)))
    while True:
        rng.shuffle(order)
        pool = batch_size * pool_batches
        for start in range(0, len(order) - batch_size + 1, pool):
            chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
            rng.shuffle(batches)
            yield from batches
