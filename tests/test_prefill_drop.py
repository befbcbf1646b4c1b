"""Algorithm 1 in prefill (model/prefill_drop.py): the cold prompt tokens leave after the first
layers. Checked against a plain reference that runs the later layers on the kept tokens only."""
import math

import pytest
import torch

from quasar_dist.model import QuasarForCausalLM
from quasar_dist.model.cache_batch import CacheBatch
from quasar_dist.model.prefill_drop import PrefillDrop
from quasar_dist.parallel.toy_model import randomise_ttm
from quasar_dist.reasoning import ReasoningConfig
from quasar_dist.reasoning.signals import budget_count, budget_keep_mask
from quasar_dist.reasoning.task import without_timing
from quasar_dist.reasoning.solve import ANSWER_MARK_ROOM, build_engine, engine_slots, slot_entries, solve_prompts

from test_engine import PROMPTS, make_tokenizer, tiny_config
from tolerance import model_bound

SINKS, RECENT = 1, 2


pytestmark = pytest.mark.usefixtures("one_thread")


def last_context_model(num_layers=3, seed=0, dtype=torch.float32) -> QuasarForCausalLM:
    torch.manual_seed(seed)
    model = QuasarForCausalLM(tiny_config(num_layers=num_layers, ttm_context="last"), guidance="bias")
    randomise_ttm(model, seed + 3)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.ttm.E.normal_(0, 0.1)  # the bilinear term matters: temperatures differ per token
    return model.to(dtype).eval()


def step_one_keep_scores(model, ids: list[int], layers: int) -> torch.Tensor:
    """Max over layers 0..layers of each prompt token's temperature under step 1's context,
    from the full forward (the reference of what prefill ranks by: the layers before the drop
    and the first one after it, whose input they made)."""
    x = torch.tensor([ids + [ids[-1]]])
    seg = torch.zeros_like(x)
    seg[0, -1] = 1
    _, temps = model(x, segment_ids=seg, return_temperatures=True)
    return torch.stack([t[0, 1, : len(ids)] for t in temps[: layers + 1]]).amax(0)


@torch.no_grad()
def reference_logits(model, ids: list[int], kept: torch.Tensor, layers: int) -> torch.Tensor:
    """All tokens through the first `layers` layers, then the kept ones alone (at their own
    positions); logits of the last token."""
    x = model.model.embed_tokens(torch.tensor([ids]))
    cos, sin = model.model.rotary_emb(torch.arange(len(ids))[None], x.dtype)
    for i, layer in enumerate(model.model.layers):
        if i == layers:
            x, cos, sin = x[:, kept], cos[:, kept], sin[:, kept]
        t = x.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool).tril().unsqueeze(0)
        x, _ = layer(x, cos, sin, None, mask, model.guidance)
    return model.lm_head(model.model.norm(x[:, -1]))[0]


def prefill(model, prompts: list[list[int]], drop: PrefillDrop | None):
    cache = model.allocate_cache(len(prompts), 64)
    batch = CacheBatch.build(slots=list(range(len(prompts))), feeds=prompts, starts=[0] * len(prompts),
                             next_pos=[0] * len(prompts), cache=cache, read="fresh", temperatures=True)
    with torch.no_grad():
        return model.forward_cached(batch, cache, drop=drop), cache


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropped_prefill_equals_the_later_layers_run_on_the_kept_tokens(dtype):
    check_dropped_prefill(last_context_model(dtype=dtype), make_tokenizer(tiny_config()))


def check_dropped_prefill(model, tokenizer) -> None:
    """The check of the test above, for any model (also tests/test_ttm_hops.py)."""
    prompts = [tokenizer.encode_prompt(p) for p in PROMPTS[:4]]
    layers, budget = 1, 0.5
    keep = [budget_count(len(p), budget, SINKS, RECENT) for p in prompts]
    logits, cache = prefill(model, prompts, PrefillDrop(layers=layers, keep=keep, sinks=SINKS, recent=RECENT))
    for row, (ids, k) in enumerate(zip(prompts, keep)):
        kept = budget_keep_mask(step_one_keep_scores(model, ids, layers), budget, SINKS, RECENT).nonzero().squeeze(1)
        assert kept.numel() == k
        expected = reference_logits(model, ids, kept, layers)
        assert (logits[row] - expected).abs().max() <= model_bound(model, expected)
        assert int(cache.length[row]) == k and cache.positions[row, :k].tolist() == kept.tolist()
        assert bool(torch.isfinite(cache.log_tau[:, row, :k]).all())  # every layer holds the kept entries
        assert bool(torch.isinf(cache.log_tau[:, row, k:]).all())  # and nothing else


def test_a_temperature_threshold_keeps_the_protected_and_the_warm_tokens():
    model, tokenizer = last_context_model(), make_tokenizer(tiny_config())
    prompts = [tokenizer.encode_prompt(p) for p in PROMPTS[:4]]
    layers, above = 2, 1.0
    drop = PrefillDrop(layers=layers, keep=None, keep_above=above, sinks=SINKS, recent=RECENT)
    logits, cache = prefill(model, prompts, drop)
    for row, ids in enumerate(prompts):
        scores = step_one_keep_scores(model, ids, layers)
        n = len(ids)
        index = torch.arange(n)
        kept = ((index < SINKS) | (index >= n - RECENT) | (scores >= math.log(above))).nonzero().squeeze(1)
        assert drop.kept[row] == kept.numel() == int(cache.length[row])
        expected = reference_logits(model, ids, kept, layers)
        assert (logits[row] - expected).abs().max() <= model_bound(model, expected)
    assert 0 < sum(drop.kept) < sum(len(p) for p in prompts)  # the threshold really splits


def test_keeping_everything_changes_nothing():
    model, tokenizer = last_context_model(), make_tokenizer(tiny_config())
    prompts = [tokenizer.encode_prompt(p) for p in PROMPTS[:3]]
    plain, plain_cache = prefill(model, prompts, None)
    kept, kept_cache = prefill(model, prompts, PrefillDrop(layers=2, keep=[len(p) for p in prompts], sinks=SINKS, recent=RECENT))
    assert torch.equal(plain, kept)
    assert torch.equal(plain_cache.length, kept_cache.length)
    assert torch.equal(plain_cache.log_tau[:, :-1], kept_cache.log_tau[:, :-1])  # the scratch slot aside
    for row, n in enumerate(int(n) for n in plain_cache.length[:-1]):
        assert torch.equal(plain_cache.positions[row, :n], kept_cache.positions[row, :n])
        for name in ("k", "v"):
            assert torch.equal(getattr(plain_cache, name)[:, row, :, :n], getattr(kept_cache, name)[:, row, :, :n]), name
        assert torch.equal(plain_cache.ah[:, row, :n], kept_cache.ah[:, row, :n])


def test_gsot_with_a_budget_layer_counts_the_work_it_skipped():
    model, tokenizer = last_context_model(), make_tokenizer(tiny_config())
    prompts = [p for p in PROMPTS if len(tokenizer.encode_prompt(p)) > 6]
    base = dict(max_new_tokens=12, max_steps=3, kv_budget=0.5, sink_tokens=SINKS, recent_tokens=RECENT)
    after = solve_prompts(model, tokenizer, prompts, ReasoningConfig(**base))
    inside = solve_prompts(model, tokenizer, prompts, ReasoningConfig(**base, kv_budget_layer=1))
    for prompt, a, b in zip(prompts, after, inside):
        n = len(tokenizer.encode_prompt(prompt))
        dropped = n - budget_count(n, 0.5, SINKS, RECENT)
        assert b["error"] is None and b["stop_reason"] is not None
        assert b["dropped_token_layers"] == (model.config.num_layers - 1) * dropped
        assert b["kv_evicted"] == a["kv_evicted"] == dropped  # the same budget, decided earlier
        assert a["dropped_token_layers"] == 0
        assert b["prompt_tokens"] == a["prompt_tokens"] == n


@pytest.mark.parametrize("over_layers", ["max", "mean"])
def test_threshold_decided_in_prefill_evicts_what_it_would_after_prefill(over_layers):
    """kv_keep_above with kv_budget_layer = layers - 1 ranks by every layer, as the decision
    after prefill does: the same entries go, the last layer computes the kept ones only."""
    model, tokenizer = last_context_model(), make_tokenizer(tiny_config())
    base = dict(max_new_tokens=12, max_steps=3, kv_keep_above=1.0, sink_tokens=SINKS, recent_tokens=RECENT,
                kv_score=over_layers)
    after = solve_prompts(model, tokenizer, PROMPTS, ReasoningConfig(**base))
    inside = solve_prompts(model, tokenizer, PROMPTS, ReasoningConfig(**base, kv_budget_layer=2))
    assert [r["kv_evicted"] for r in inside] == [r["kv_evicted"] for r in after]
    assert [r["dropped_token_layers"] for r in inside] == [r["kv_evicted"] for r in after]
    assert sum(r["kv_evicted"] for r in after) > 0


def test_budget_layer_is_checked_against_the_config_and_the_model():
    with pytest.raises(ValueError, match="kv_budget_layer needs kv_budget"):
        ReasoningConfig(kv_budget_layer=1)
    with pytest.raises(ValueError, match="kv_budget_layer needs kv_budget"):
        ReasoningConfig(kv_budget=0.5, kv_evictor="snapkv", kv_budget_layer=1)
    with pytest.raises(ValueError, match="not both"):
        ReasoningConfig(kv_budget=0.5, kv_keep_above=1.0)
    tokenizer = make_tokenizer(tiny_config())
    with pytest.raises(ValueError, match="below the model's 3 layers"):
        solve_prompts(last_context_model(), tokenizer, ["so"], ReasoningConfig(kv_budget=0.5, kv_budget_layer=3))
    mean_model = QuasarForCausalLM(tiny_config(ttm_context="mean")).eval()
    with pytest.raises(ValueError, match="ttm_context 'last'"):
        solve_prompts(mean_model, tokenizer, ["so"], ReasoningConfig(kv_budget=0.5, kv_budget_layer=1))


def test_flops_count_the_skipped_layers():
    from quasar_dist.engine.flops import flops_for, params_per_layer

    cfg = tiny_config()
    assert flops_for(cfg, 10, 50) - flops_for(cfg, 10, 50, dropped_token_layers=3) == pytest.approx(
        2.0 * params_per_layer(cfg) * 3)
    assert math.isclose(flops_for(cfg, 10, 50, 0), flops_for(cfg, 10, 50))


def test_a_prefill_budget_sizes_slots_to_what_prompts_keep():
    """Decided inside prefill, the dropped tokens never reach the cache: a slot holds what the
    longest admissible prompt keeps plus generation and a trial answer (automatic
    kv_slot_entries), the same memory holds more slots, a prompt longer than a slot runs, and
    every row equals the one full-size slots give."""
    model, tokenizer = last_context_model(), make_tokenizer(tiny_config())
    long_prompt = " ".join(["the cat has 3 apples"] * 9)  # 45 words: longer than the slot below
    prompts = PROMPTS + [long_prompt]
    base = dict(max_new_tokens=6, max_steps=2, kv_budget=0.25, kv_budget_layer=1, sink_tokens=SINKS,
                recent_tokens=RECENT, probe_tokens=2, cache_memory_mb=0.5)
    positions = model.config.max_sequence_length
    auto, full = ReasoningConfig(**base), ReasoningConfig(**base, kv_slot_entries=positions)
    entries = slot_entries(model.config, auto)
    assert entries == budget_count(positions, 0.25, SINKS, RECENT) + 6 + 2 + ANSWER_MARK_ROOM < positions
    assert len(tokenizer.encode_prompt(long_prompt)) > entries
    assert engine_slots(model, auto) >= 2 * engine_slots(model, full)  # the memory is reused
    engine = build_engine(model, tokenizer, auto)
    assert engine.runner.cache.k.shape[3] == entries == engine.slot_entries
    same_slots = dict(max_batch_size=4)  # equal batching: the rows must be equal to the bit
    small = solve_prompts(model, tokenizer, prompts, ReasoningConfig(**base, **same_slots))
    large = solve_prompts(model, tokenizer, prompts, ReasoningConfig(**base, **same_slots, kv_slot_entries=positions))
    assert [without_timing(r) for r in small] == [without_timing(r) for r in large]
    assert small[-1]["error"] is None and small[-1]["kv_evicted"] > 0


def test_a_slot_too_small_refuses_the_prompt_or_stops_the_sequence():
    """What a slot cannot hold is a clear error row (the prompt) or a stop (the generation:
    "context", reported as max_tokens), never a write past the slot."""
    model, tokenizer = last_context_model(), make_tokenizer(tiny_config())
    fits = " ".join(["the cat has 3 apples"] * 4)  # 22 tokens: leaves the 2 of min_generation_room
    too_long = " ".join(["the cat has 3 apples"] * 5)
    config = ReasoningConfig(mode="cot", max_new_tokens=30, kv_slot_entries=24, min_generation_room=2)
    ran, refused = solve_prompts(model, tokenizer, [fits, too_long], config)
    assert refused["stop_reason"] == "error" and "cache entries" in refused["error"]
    assert ran["error"] is None and ran["prompt_tokens"] == 22
    assert ran["stop_reason"] == "max_tokens" and ran["generated_tokens"] < 30 and ran["kv_total"] <= 24


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_under_the_drop_sees_what_the_engine_keeps(dtype):
    """train/losses.PrefillDropInTraining: a full forward whose attention hides the dropped keys
    gives, at every position of a continuation, the logits of the engine decoding after prefill
    dropping (guidance off, threshold after `layers` layers): the decoder trains as it runs."""
    from quasar_dist.train.losses import PrefillDropInTraining

    model, tokenizer = last_context_model(dtype=dtype), make_tokenizer(tiny_config())
    model.guidance = "off"
    layers, above = 1, 1.0
    ids = tokenizer.encode_prompt(PROMPTS[3])
    continuation = tokenizer.encode_prompt(PROMPTS[0])[1:]
    drop = PrefillDrop(layers=layers, keep=None, keep_above=above, sinks=SINKS, recent=RECENT)
    first, cache = prefill(model, [ids], drop)
    engine_logits = [first[0]]
    with torch.no_grad():
        for token in continuation[:-1]:
            batch = CacheBatch.append(cache, [0], torch.tensor([[token]]))
            engine_logits.append(model.forward_cached(batch, cache)[0])
    assert 0 < drop.kept[0] < len(ids)  # the threshold really drops

    x = torch.tensor([ids + continuation])
    seg = torch.zeros_like(x)
    seg[0, len(ids):] = 1
    with torch.no_grad():
        _, log_taus = model(x, segment_ids=seg, return_temperatures=True)
        training = PrefillDropInTraining(log_taus, seg, layers=layers, keep_above=above, sinks=SINKS, recent=RECENT)
        assert int((~training.dropped[0, : len(ids)]).sum()) == drop.kept[0]
        model.guidance = "bias"
        logits = model(x, segment_ids=seg, attention_log_tau=training.maps(model.config.num_layers, 2, dtype))[0]
    expected = torch.stack(engine_logits)
    got = logits[len(ids) - 1 : len(ids) - 1 + len(continuation)]
    assert (got - expected).abs().max() <= model_bound(model, expected)
