"""`quasar train CONFIG.yaml`: train a temperature-guided decoder on the reasoning tasks with a
DeepSpeed engine (gloo on CPU, NCCL on GPU; one process or several ranks)."""
from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from tokenizers import Tokenizer

from quasar_dist.data.tasks import make_tasks
from quasar_dist.data.tokenizer_build import BOS_ID, EOS_ID, PAD_ID, build_tokenizer
from quasar_dist.model import ModelConfig, QuasarForCausalLM, TextTokenizer, save_pretrained
from quasar_dist.model.checkpoint import attach_fresh_ttm
from quasar_dist.model.registry import resolve_model_path
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.util.typed_config import load_config, to_dict

from .adapter import distillation_loss, freeze_all_but_ttm, with_fresh_ttm
from .batches import collate, collate_relevance, encode_task, length_grouped_batches
from .checkpointing import load_training_state, save_training_state
from .config import TrainConfig
from .evaluate import config_accuracy, greedy_accuracy
from .losses import (PrefillDropInTraining, RelaxedEviction, budget_loss, keep_target, relevance_loss, task_loss,
                     temperature_losses, visible_temperature_mask)


def train_from_config(path: str) -> Path:
    return train(load_config(TrainConfig, path))


def build_model(cfg: TrainConfig, vocab_size: int) -> QuasarForCausalLM:
    if cfg.init_from:
        return continue_model(cfg)
    s = cfg.model
    mcfg = ModelConfig(
        architecture="llama", vocab_size=vocab_size, hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size, num_layers=s.num_layers, num_heads=s.num_heads,
        num_kv_heads=s.num_kv_heads, max_position_embeddings=s.max_position_embeddings,
        tie_word_embeddings=True, bos_token_id=BOS_ID, eos_token_ids=[EOS_ID], pad_token_id=PAD_ID,
        ttm_dim=s.ttm_dim, tau_max=s.tau_max, guidance=cfg.guidance, ttm_context=s.ttm_context, ttm_hops=s.ttm_hops,
    )
    torch.manual_seed(cfg.seed)
    model = QuasarForCausalLM(mcfg)
    for name, p in model.named_parameters():
        if p.dim() == 2 and ".ttm." not in name:
            torch.nn.init.normal_(p, 0.0, 0.02)
    attach_fresh_ttm(model, cfg.seed)
    return model


def continue_model(cfg: TrainConfig) -> QuasarForCausalLM:
    """`init_from`'s decoder with the recipe's context length and TTM context; the TTM starts
    afresh as the identity (seeded), since its old weights were trained for another context.
    With `freeze_decoder` only the TTM trains; with `keep_ttm` the TTM is init_from's own."""
    if cfg.keep_ttm:
        from quasar_dist.model import load_model

        model = load_model(cfg.init_from)
        if model.config.max_sequence_length < cfg.model.max_position_embeddings:
            raise ValueError(f"keep_ttm keeps {cfg.init_from}'s shape: its {model.config.max_sequence_length} positions "
                             f"are fewer than the recipe's max_position_embeddings {cfg.model.max_position_embeddings}")
        model.config = replace(model.config, guidance=cfg.guidance)
        model.guidance = cfg.guidance
        return model
    model = with_fresh_ttm(cfg.init_from, cfg.seed, max_position_embeddings=cfg.model.max_position_embeddings,
                           ttm_context=cfg.model.ttm_context, ttm_hops=cfg.model.ttm_hops, guidance=cfg.guidance)
    if cfg.freeze_decoder:
        freeze_all_but_ttm(model)
    return model


@torch.no_grad()
def base_logits(model: QuasarForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """The frozen base's logits: the same weights with guidance off (the TTM unused)."""
    before = model.guidance
    model.guidance = "off"
    try:
        return model(ids)
    finally:
        model.guidance = before


def make_training_tasks(cfg: TrainConfig) -> list[dict]:
    """Today's tasks, and with `distractors` a share of them drawn with lo..hi distractors
    (equal shares per count, each count from its own seed)."""
    plain_n = cfg.train_tasks_per_kind
    tasks = []
    if cfg.distractors:
        lo, hi = cfg.distractors
        counts = range(lo, hi + 1)
        per_count = max(1, round(cfg.train_tasks_per_kind * cfg.distractor_share / len(counts)))
        plain_n = cfg.train_tasks_per_kind - per_count * len(counts)
        for kind in cfg.kinds:
            for d in counts:
                tasks += make_tasks(kind, per_count, cfg.data_seed * 1000 + 100 + d, "train", distractors=d)
    return tasks + [t for k in cfg.kinds for t in make_tasks(k, max(0, plain_n), cfg.data_seed, "train")]


def make_val_tasks(cfg: TrainConfig) -> dict[str, list[dict]]:
    val = {k: make_tasks(k, cfg.val_tasks_per_kind, cfg.data_seed + 1, "val") for k in cfg.kinds}
    if cfg.distractors:
        for k in cfg.kinds:
            val[f"{k}_d{cfg.val_distractors}"] = make_tasks(k, cfg.val_tasks_per_kind, cfg.data_seed + 1, "val",
                                                           distractors=cfg.val_distractors)
    return val


@torch.no_grad()
def drop_decisions(engine, model, ids: torch.Tensor, seg: torch.Tensor, cfg: TrainConfig) -> PrefillDropInTraining:
    """Prefill dropping's decisions for a batch, from the model's temperatures without the drop."""
    before = model.guidance
    model.guidance = "off"  # the decisions read the temperatures; attention as the checkpoint runs
    try:
        _, log_taus = engine(ids, segment_ids=seg, return_temperatures=True)
    finally:
        model.guidance = before
    protect = ReasoningConfig()  # the tokens GSoT protects by default
    return PrefillDropInTraining(log_taus, seg, layers=cfg.prefill_drop_layer, keep_above=cfg.prefill_keep_above,
                                 sinks=protect.sink_tokens, recent=protect.recent_tokens)


def prefill_drop_config(cfg: TrainConfig):
    """The GSoT setting the recipe trains for (validation), or None."""
    if cfg.prefill_drop_layer is None:
        return None
    return ReasoningConfig(mode="gsot", guidance="off", kv_budget_layer=cfg.prefill_drop_layer,
                           kv_keep_above=cfg.prefill_keep_above, kv_score="max", backtrack_below=0.0,
                           max_new_tokens=112, max_batch_size=64)


def param_groups(model, cfg: TrainConfig) -> list[dict]:
    ttm, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:  # a frozen base (adapter training)
            continue
        (ttm if ".ttm." in name else decay if p.dim() == 2 else no_decay).append(p)
    return [
        {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "base_lr": cfg.lr},
        {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0, "base_lr": cfg.lr},
        {"params": ttm, "lr": cfg.ttm_lr, "weight_decay": 0.0, "base_lr": cfg.ttm_lr},
    ]


def lr_factor(step: int, minutes: float, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine to 10% (or constant: cfg.lr_schedule). Progress is the
    larger of the step and the time fraction, so a run cut short by its time budget still ends
    with a decayed rate."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    by_steps = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, max(by_steps, minutes / cfg.max_minutes))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def prepare_data(cfg: TrainConfig, out: Path):
    train_tasks = make_training_tasks(cfg)
    val_tasks = make_val_tasks(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.init_from:  # the starting model's tokenizer, byte for byte
        source = resolve_model_path(cfg.init_from) / "tokenizer.json"
        (out / "tokenizer.json").write_bytes(source.read_bytes())
        raw_tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    else:
        sample = random.Random(cfg.seed).sample(train_tasks, min(8000, len(train_tasks)))
        raw_tok = build_tokenizer((t["prompt"] + "\n" + t["solution"] for t in sample), cfg.model.vocab_size)
        raw_tok.save(str(out / "tokenizer.json"))
    triples = [encode_task(raw_tok, t, labels=bool(cfg.lambda_relevance)) for t in train_tasks]
    encoded = [(ids, prompt_len) for ids, prompt_len, _ in triples]
    relevance = [labels for _, _, labels in triples] if cfg.lambda_relevance else None
    return encoded, relevance, val_tasks, raw_tok


def evaluate(model, tokenizer, val_tasks: dict, prefill_drop=None) -> dict:
    """Greedy CoT accuracy per validation set and guidance, temperature AUROC where labelled,
    and with `prefill_drop` (a ReasoningConfig) also that setting's accuracy (`val_acc_<set>_drop`)."""
    from quasar_dist.bench.relevance import relevance_auroc

    result = {}
    for guidance in dict.fromkeys((model.config.guidance, "off")):  # once when the checkpoint's is off
        for kind, tasks in val_tasks.items():
            result[f"val_acc_{kind}_{guidance}"] = greedy_accuracy(model, tokenizer, tasks, guidance)
    if prefill_drop is not None:
        for kind, tasks in val_tasks.items():
            result[f"val_acc_{kind}_drop"] = config_accuracy(model, tokenizer, tasks, prefill_drop)
    for kind, tasks in val_tasks.items():
        if tasks and "relevant_spans" in tasks[0]:
            result[f"val_auroc_{kind}"] = relevance_auroc(model, tokenizer, tasks[:40])["auroc_layer_mean"]
    return result


def train(cfg: TrainConfig) -> Path:
    import deepspeed
    from tqdm import tqdm

    from .distributed import init_training_distributed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = init_training_distributed()
    out = Path(cfg.output_dir)
    (out / "config.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    t0 = time.time()
    if cfg.adapter_of:  # a TTM for a frozen base, by self-distillation (adapter.py)
        from .adapter import adapter_model, adapter_prompts, self_distillation_data

        model, tokenizer = adapter_model(cfg)
        encoded = self_distillation_data(model, tokenizer, adapter_prompts(cfg), cfg.continuation_tokens)
        relevance = None
        val_tasks = make_val_tasks(cfg) if cfg.val_tasks_per_kind else {}
    else:
        encoded, relevance, val_tasks, raw_tok = prepare_data(cfg, out)
        model = build_model(cfg, raw_tok.get_vocab_size())
        tokenizer = TextTokenizer(raw_tok, model.config)
    data_s = time.time() - t0
    newline_id = tokenizer.newline_token_ids
    optimizer = torch.optim.AdamW(param_groups(model, cfg), betas=(0.9, 0.95))
    ds_config = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }
    engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    step, history = load_training_state(out / "checkpoints", model, engine.optimizer) if cfg.zero_stage == 0 else (0, [])
    ttm_params = [p for n, p in model.named_parameters() if ".ttm." in n]
    rng = random.Random(cfg.seed * 1000 + rank + step)
    mine = list(range(rank, len(encoded), world))
    batches = length_grouped_batches([len(encoded[i][0]) for i in mine], cfg.batch_size, rng)
    noise = torch.Generator(device=engine.device).manual_seed(cfg.seed * 1000 + rank + step)
    start, tokens_seen = time.time(), 0
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=rank != 0, dynamic_ncols=True)
    while step < cfg.max_steps and (time.time() - start) / 60 < cfg.max_minutes:
        picked = [mine[i] for i in next(batches)]
        ids, seg, loss_mask = (t.to(engine.device) for t in collate([encoded[i] for i in picked], newline_id))
        model.guidance = "off" if rng.random() < cfg.guidance_off_fraction else cfg.guidance
        evicting = cfg.keep_target is not None and model.guidance != "off" and step >= cfg.evict_from_step
        eviction = RelaxedEviction(seg, (seg == 0).sum(1), sinks=cfg.protect_sinks, window=cfg.protect_window,
                                   gamma=cfg.evict_gamma, tau_max=cfg.model.tau_max, generator=noise) if evicting else None
        drop = None
        if cfg.prefill_drop_layer is not None and rng.random() < cfg.prefill_drop_share:
            drop = drop_decisions(engine, model, ids, seg, cfg)
            model.guidance = "bias"  # attention adds the drop's bias, nothing else (losses.py)
            logits, log_taus = engine(ids, segment_ids=seg, return_temperatures=True,
                                      attention_log_tau=drop.maps(model.config.num_layers, int(seg.max()) + 1,
                                                                  next(model.parameters()).dtype))
        else:
            logits, log_taus = engine(ids, segment_ids=seg, return_temperatures=True)
        target = base_logits(model, ids) if cfg.adapter_of else None  # the frozen base (exactly the checkpoint)
        lm = distillation_loss(logits, target, loss_mask) if cfg.adapter_of else task_loss(logits, ids, loss_mask)
        if evicting:  # second forward: the same, with the prompt's entries decided (losses.py)
            eviction.decide(log_taus)
            evicted_logits, _ = engine(ids, segment_ids=seg, return_temperatures=True, attention_log_tau=eviction)
            evicted = (distillation_loss(evicted_logits, target, loss_mask) if cfg.adapter_of
                       else task_loss(evicted_logits, ids, loss_mask))
            lm = 0.5 * (lm + evicted)
        visible = visible_temperature_mask(seg, ids, PAD_ID)
        anti, sparsity = temperature_losses(log_taus, visible, cfg.model.tau_max)
        loss = lm + cfg.lambda_anti_collapse * anti + cfg.lambda_sparsity * sparsity
        relevance_term = None
        if relevance is not None:
            labels = collate_relevance([relevance[i] for i in picked], ids.shape[1]).to(engine.device)
            relevance_term = relevance_loss(log_taus, labels, visible, cfg.model.tau_max, cfg.relevance_first_step_only)
            loss = loss + cfg.lambda_relevance * relevance_term
        kept = None
        if evicting:
            kept = eviction.kept_fraction()
            loss = loss + cfg.lambda_budget * budget_loss(kept, keep_target(step, cfg.keep_target, cfg.keep_ramp_steps))
        for group in engine.optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(step, (time.time() - start) / 60, cfg)
        engine.backward(loss)
        if cfg.zero_stage == 0:  # TTM's own clip (paper eq. 71); ZeRO>0 keeps grads partitioned
            torch.nn.utils.clip_grad_norm_(ttm_params, cfg.ttm_grad_clip)
        engine.step()
        step += 1
        tokens_seen += int((ids != PAD_ID).sum())
        tok_s = tokens_seen / max(1e-9, time.time() - start)
        bar.update(1)
        bar.set_postfix(loss=f"{lm.item():.3f}", tau=f"{sparsity.item():.2f}", tok_s=f"{tok_s:,.0f}",
                        **({"kept": f"{kept.item():.2f}"} if kept is not None else {}),
                        **({"drop_kept": f"{drop.kept_fraction():.2f}"} if drop is not None else {}),
                        **({"rel": f"{relevance_term.item():.3f}"} if relevance_term is not None else {}))
        record = {"step": step, "loss": lm.item(), "mean_tau": sparsity.item() * cfg.model.tau_max, "minutes": (time.time() - start) / 60}
        if kept is not None:
            record["kept"] = kept.item()
        if drop is not None:
            record["prefill_kept"] = drop.kept_fraction()
        if relevance_term is not None:
            record["relevance_loss"] = relevance_term.item()
        if rank == 0 and (step % cfg.eval_every == 0 or step == cfg.max_steps):
            model.guidance = cfg.guidance
            record |= evaluate(model, tokenizer, val_tasks, prefill_drop_config(cfg))
            bar.write(f"step {step}: " + ", ".join(f"{k}={v:.3f}" for k, v in record.items() if k.startswith("val")))
        history.append(record)
        if rank == 0 and cfg.zero_stage == 0 and step % cfg.checkpoint_every == 0:
            save_training_state(out / "checkpoints", model, engine.optimizer, step, history)
    bar.close()
    model.guidance = cfg.guidance
    if rank == 0:
        return finish(cfg, model, tokenizer, val_tasks, history, out, step, start, data_s)
    return out


def finish(cfg, model, tokenizer, val_tasks, history, out: Path, step, start, data_s) -> Path:
    from quasar_dist.model.adapter import save_adapter

    from .curves import plot_training_curves

    final = evaluate(model, tokenizer, val_tasks, prefill_drop_config(cfg))
    history.append({"step": step, **final})
    if cfg.adapter_of:
        folder = save_adapter(model, out / "adapter", base=cfg.adapter_of)
    else:
        folder = save_pretrained(model, out / "model", tokenizer_json=out / "tokenizer.json")
    summary = {
        "steps": step, "train_minutes": (time.time() - start) / 60, "data_prep_s": data_s,
        "train_tasks": len(cfg.kinds) * cfg.train_tasks_per_kind, "final": final,
        "params": sum(p.numel() for p in model.parameters()),
        "trained_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "history.json").write_text(json.dumps(history))
    plot_training_curves(history, out / "training_curve.png")
    if cfg.ship_to:
        dest = Path(cfg.ship_to)
        dest.mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            shutil.copy2(f, dest / f.name)
    print(json.dumps(summary, indent=2))
    return folder
