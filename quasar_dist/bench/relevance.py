"""Do temperatures know what matters? AUROC of prompt-token temperatures against ground truth.

For a distractor task (data/distractors.py) every prompt token is labelled relevant when its
characters overlap a `relevant_spans` entry, else distractor. Its score is its log temperature
under the context the first generated step sees (the context after the prompt, step 1), per
layer, from the model's full forward (`return_temperatures=True`, the contract the engine's
cached temperatures are tested against). The BOS token and the prompt's closing newline carry no
label. AUROC is computed per task (Mann-Whitney, ties counted half) and averaged over tasks.

Three summaries: `auroc_per_layer` (each layer's temperatures), `auroc_layer_mean` (the mean
log temperature over layers) and `auroc_layer_max` (the max over layers: what budgeted
eviction ranks by).
"""
from __future__ import annotations

import torch


def token_labels(tokenizer, prompt: str, spans: list[dict]) -> tuple[list[int], list[int | None]]:
    """Model input ids ([bos] prompt "\\n") and a label per id: 1 relevant, 0 distractor, None unlabelled."""
    enc = tokenizer.tokenizer.encode(prompt.rstrip("\n") + "\n", add_special_tokens=False)
    ids, labels = list(enc.ids), offset_labels(enc.offsets, prompt, spans)
    if tokenizer.bos_token_id is not None:
        ids, labels = [tokenizer.bos_token_id] + ids, [None] + labels
    return ids, labels


def offset_labels(offsets: list[tuple[int, int]], prompt: str, spans: list[dict]) -> list[int | None]:
    """A label per token of `prompt + "\\n"` from its character offsets: 1 when it overlaps a
    relevant span, 0 when not, None for the closing newline."""
    end_of_text = len(prompt.rstrip("\n"))
    return [None if start >= end_of_text else int(any(start < s["end"] and s["start"] < end for s in spans))
            for start, end in offsets]


@torch.no_grad()
def step_one_log_tau(model, ids: list[int]) -> torch.Tensor:
    """[L, T] log temperature of each prompt token under step 1's context (the prompt done)."""
    device = next(model.parameters()).device
    x = torch.tensor([ids + [ids[-1]]], device=device)  # one token of step 1 opens that context
    seg = torch.zeros_like(x)
    seg[0, -1] = 1
    _, temps = model(x, segment_ids=seg, return_temperatures=True)
    return torch.stack([t[0, 1, : len(ids)] for t in temps]).float().cpu()


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float | None:
    """P(score of a random relevant token > score of a random distractor), ties half; None if
    one class is missing."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.numel() == 0 or neg.numel() == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (pos.numel() * neg.numel()))


def relevance_auroc(model, tokenizer, tasks: list[dict]) -> dict:
    """Per-task AUROC averaged over `tasks` (each with `relevant_spans`), per layer and for the
    layer-mean temperature; also the mean temperature of relevant and distractor tokens."""
    was_training = model.training
    model.eval()
    per_layer, layer_mean, layer_max, warm, cold = [], [], [], [], []
    try:
        for task in tasks:
            ids, labels = token_labels(tokenizer, task["prompt"], task["relevant_spans"])
            keep = torch.tensor([lab is not None for lab in labels])
            y = torch.tensor([lab if lab is not None else -1 for lab in labels])[keep]
            log_tau = step_one_log_tau(model, ids)[:, keep]  # [L, n]
            scores = [auroc(layer, y) for layer in log_tau]
            mean_score = auroc(log_tau.mean(0), y)
            max_score = auroc(log_tau.amax(0), y)
            if mean_score is None:
                continue
            per_layer.append(scores)
            layer_mean.append(mean_score)
            layer_max.append(max_score)
            tau = log_tau.exp().mean(0)
            warm.append(float(tau[y == 1].mean()))
            cold.append(float(tau[y == 0].mean()))
    finally:
        model.train(was_training)
    n = len(layer_mean)
    if n == 0:
        return {"tasks": 0}
    layers = list(zip(*per_layer))
    return {
        "tasks": n,
        "auroc_layer_mean": sum(layer_mean) / n,
        "auroc_layer_max": sum(layer_max) / n,
        "auroc_per_layer": [sum(v for v in col if v is not None) / max(1, sum(v is not None for v in col)) for col in layers],
        "tau_relevant": sum(warm) / n,
        "tau_distractor": sum(cold) / n,
    }
