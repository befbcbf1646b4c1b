"""TTM adapters trained on a frozen base (`quasar train` with `adapter_of`; issue #14).

The base's weights never change: only the TTM learns, by self-distillation, so no labels are
needed, only prompts. The base (guidance off, i.e. exactly the checkpoint) writes a greedy
continuation of every prompt; then the student, the same base with guidance on and relaxed
eviction in the loop (losses.RelaxedEviction), is trained to match the base's next-token
distributions on those continuations (KL), under the same budget hinge as joint training. The
result is a small folder (model/adapter.py) that `load_model(BASE, ttm=...)` attaches.
"""
from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from quasar_dist.engine import Engine, SamplingParams, StopRule, generate
from quasar_dist.model import ModelLoadError, QuasarForCausalLM, TextTokenizer, load_model, resolve_model_path
from quasar_dist.model.checkpoint import attach_fresh_ttm
from quasar_dist.util.errors import first_line

from .config import TrainConfig


def with_fresh_ttm(base: str, seed: int, **overrides) -> QuasarForCausalLM:
    """`base`'s decoder weights under its config changed by `overrides`, with a fresh TTM (the
    identity, drawn from `seed`): the start of an adapter, and of a model continued with a TTM
    of another kind."""
    loaded = load_model(base)
    model = QuasarForCausalLM(replace(loaded.config, **overrides))
    decoder = {k: v for k, v in loaded.state_dict().items() if ".ttm." not in k}
    missing, unexpected = model.load_state_dict(decoder, strict=False)
    assert not unexpected and all(".ttm." in k for k in missing), (missing, unexpected)
    attach_fresh_ttm(model, seed)
    return model


def freeze_all_but_ttm(model: QuasarForCausalLM) -> None:
    """Only the TTM's parameters train (an adapter; a recipe with `freeze_decoder`)."""
    for name, p in model.named_parameters():
        p.requires_grad_(".ttm." in name)


def adapter_model(cfg: TrainConfig) -> tuple[QuasarForCausalLM, TextTokenizer]:
    """The base with a fresh TTM (the recipe's ttm_dim, tau_max, ttm_context; identity, seeded)
    and every base parameter frozen."""
    shape = cfg.model
    model = with_fresh_ttm(cfg.adapter_of, cfg.seed, ttm_dim=shape.ttm_dim, tau_max=shape.tau_max,
                           ttm_context=shape.ttm_context, ttm_hops=shape.ttm_hops, guidance=cfg.guidance)
    freeze_all_but_ttm(model)
    tokenizer = TextTokenizer.from_folder(resolve_model_path(cfg.adapter_of), model.config)
    return model, tokenizer


def adapter_prompts(cfg: TrainConfig) -> list[str]:
    """The prompts: the `prompts` Parquet file's `prompt_col`, or the recipe's own tasks."""
    if cfg.prompts is None:
        from .trainer import make_training_tasks

        return [t["prompt"] for t in make_training_tasks(cfg)]
    try:
        table = pq.read_table(cfg.prompts, columns=[cfg.prompt_col])
    except (OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"{cfg.prompts}: cannot read column {cfg.prompt_col!r} ({first_line(exc)})") from None
    prompts = [p for p in table.column(cfg.prompt_col).to_pylist() if isinstance(p, str) and p.strip()]
    if not prompts:
        raise ModelLoadError(f"{cfg.prompts}: no non-empty prompts in column {cfg.prompt_col!r}")
    return prompts


@torch.no_grad()
def self_distillation_data(model: QuasarForCausalLM, tokenizer: TextTokenizer, prompts: list[str],
                           max_new_tokens: int, batch_size: int = 64) -> list[tuple[list[int], int]]:
    """(ids, prompt length) per prompt: the prompt and the base's greedy continuation of it."""
    before = model.guidance
    model.guidance = "off"  # exactly the base
    try:
        limit = model.config.max_sequence_length
        encoded = [tokenizer.encode_prompt(p)[: limit - max_new_tokens] for p in prompts]
        engine = Engine(model.eval(), StopRule.from_tokenizer(tokenizer), num_slots=batch_size,
                        max_len=max(len(e) for e in encoded) + max_new_tokens)
        seqs = generate(engine, encoded, SamplingParams(), max_new_tokens=max_new_tokens)
    finally:
        model.guidance = before
        model.train()
    return [(ids + list(s.output_ids), len(ids)) for ids, s in zip(encoded, seqs)]


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the next-token distributions at the masked positions."""
    mask = loss_mask[:, :-1]
    s = F.log_softmax(student[:, :-1][mask].float(), -1)
    t = F.log_softmax(teacher[:, :-1][mask].float(), -1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")
