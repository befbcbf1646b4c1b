"""The TTM's chain context (ModelConfig.ttm_hops; model/ttm.py, model/ttm_hops.py): the dense
form training uses equals the batched form the engine uses; temperatures stay causal; the
engine's refreshed and prefill-dropped temperatures equal the full forward's; adapters keep
their hops."""
import math

import pytest
import torch

from quasar_dist.model import QuasarForCausalLM, load_model, save_pretrained
from quasar_dist.model.ttm import MATCH_UNIT
from quasar_dist.model.ttm_hops import dense_chain_context, steps_chain_context
from quasar_dist.parallel.toy_model import randomise_ttm

from test_engine import NL, PROMPTS, check_refresh_at_boundaries, make_tokenizer, segment_ids, tiny_config
from test_prefill_drop import check_dropped_prefill
from tolerance import rounding_bound

pytestmark = pytest.mark.usefixtures("one_thread")
HOPS = 3


def hop_model(seed=0, dtype=torch.float32, **overrides) -> QuasarForCausalLM:
    """Random weights and a TTM whose chain context really acts (s, gamma, G far from 0)."""
    torch.manual_seed(seed)
    model = QuasarForCausalLM(tiny_config(ttm_context="last", ttm_hops=HOPS, **overrides), guidance="bias")
    randomise_ttm(model, seed + 3)
    g = torch.Generator().manual_seed(seed + 5)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(4)
            layer.mlp.down_proj.weight.mul_(4)
            layer.ttm.E.normal_(0, 0.3, generator=g)
            layer.ttm.G.normal_(0, 0.3, generator=g)
            layer.ttm.hop_keep.fill_(0.5)
            layer.ttm.hop_sharpness.fill_(-0.5)
            layer.ttm.match_scale.fill_(math.log(2.0 / MATCH_UNIT))  # s = 2: temperatures spread, not saturated into ties
        model.lm_head.weight[NL] *= 1.5  # steps often enough to have boundaries
    return model.to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_step_that_sees_nothing_gets_zero_queries(dtype):
    """The prompt's own context (c_0 = 0, nothing visible): every hop's query is zero."""
    g = torch.Generator().manual_seed(0)
    b, t, r, hops = 3, 7, 5, 4
    ah = torch.randn(b, t, r, generator=g, dtype=dtype)
    ctx = torch.zeros(b, 1, 2 * r, dtype=dtype)
    G = torch.randn(r, r, generator=g, dtype=dtype)
    keep, beta = torch.tensor([0.3], dtype=dtype), torch.tensor([6.0], dtype=dtype)
    empty = dense_chain_context(ctx, ah, torch.zeros(b, 1, t, dtype=torch.bool), G, keep, beta, hops)
    assert torch.equal(empty[..., r:], torch.zeros_like(empty[..., r:]))


def test_chain_temperatures_are_causal_and_saved(tmp_path):
    """A token after position t changes no temperature at positions <= t under any step's
    context (the hops read only the entries before a step), and the hops survive save/load."""
    model, tokenizer = hop_model(), make_tokenizer(tiny_config())
    prompt = tokenizer.encode_prompt(PROMPTS[3])
    out = [5, NL, 7, 8, NL, 9]
    x = torch.tensor([prompt + out])
    seg = torch.tensor([segment_ids(len(prompt), out)])
    changed = x.clone()
    changed[0, -1] = 4
    with torch.no_grad():
        _, a = model(x, segment_ids=seg, return_temperatures=True)
        _, b = model(changed, segment_ids=seg, return_temperatures=True)
    t = x.shape[1] - 1
    assert all(torch.equal(la[..., :t], lb[..., :t]) for la, lb in zip(a, b))
    assert any(not torch.equal(la, lb) for la, lb in zip(a, b))  # the changed token's own temperature moved
    assert float(torch.stack(a).std()) > 0.1  # and the temperatures are not flat
    folder = save_pretrained(model, tmp_path / "m")
    assert load_model(folder).config.ttm_hops == HOPS


def test_refreshed_temperatures_with_hops_equal_the_full_forward():
    """At every boundary the engine's chain context (hops over the slot's live entries) and the
    refreshed temperatures equal a full forward's with segment ids."""
    check_refresh_at_boundaries(hop_model(), make_tokenizer(tiny_config()), max_new_tokens=60)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prefill_dropping_ranks_by_the_chain_context(dtype):
    """Algorithm 1 in prefill with hops: the kept tokens are those the full forward's step-1
    temperatures rank highest, and the logits those of the later layers run on them alone."""
    check_dropped_prefill(hop_model(dtype=dtype, num_layers=3), make_tokenizer(tiny_config()))


def test_an_adapter_with_hops_round_trips(tmp_path):
    """`save_adapter` records the hops; `load_model(BASE, ttm=ADAPTER)` rebuilds the same TTM."""
    from quasar_dist.model.adapter import save_adapter

    model = hop_model()
    plain = QuasarForCausalLM(tiny_config(ttm_context="last"))  # the base: the same decoder, a TTM without hops
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".ttm." not in k}, strict=False)
    base = save_pretrained(plain, tmp_path / "base")
    adapter = save_adapter(model, tmp_path / "adapter", base=str(base))
    loaded = load_model(base, ttm=adapter).eval()
    assert loaded.config.ttm_hops == HOPS
    x = torch.tensor([make_tokenizer(tiny_config()).encode_prompt(PROMPTS[3]) + [NL]])
    seg = torch.zeros_like(x)
    seg[0, -1] = 1
    with torch.no_grad():
        _, expected = model(x, segment_ids=seg, return_temperatures=True)
        _, got = loaded(x, segment_ids=seg, return_temperatures=True)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


def test_lazy_refresh_with_guidance_off_reads_what_an_eager_refresh_writes():
    """With guidance off a commit refreshes only the step's own entries (engine/runner.py
    `stale`); whatever reads the others (eviction below a threshold, the convergence test,
    backtracking's rollback) gets the temperatures an eager refresh of every entry gives."""
    from pathlib import Path

    from quasar_dist.data.tasks import make_tasks
    from quasar_dist.model import load_with_tokenizer
    from quasar_dist.reasoning.config import ReasoningConfig
    from quasar_dist.reasoning.solve import build_engine, solve_prompts

    model, tokenizer = load_with_tokenizer(str(Path(__file__).resolve().parent.parent / "models" / "tiny_hops_fixed"))
    assert model.config.guidance == "off"
    prompts = [t["prompt"] for kind in ("arith", "logic") for t in make_tasks(kind, 4, 3, "test", distractors=10)]
    config = ReasoningConfig(evict_below=0.3, epsilon=1e-4, backtrack_below=0.5, max_new_tokens=64, max_batch_size=4)
    eager_engine = build_engine(model, tokenizer, config)
    eager_engine.runner.eager_refresh = True
    lazy, eager = solve_prompts(model, tokenizer, prompts, config), solve_prompts(model, tokenizer, prompts, config, engine=eager_engine)
    assert sum(r["kv_evicted"] for r in lazy) > 0  # the stale temperatures were read, and used
    bound = rounding_bound(torch.float32, magnitude=2.0, depth=4, width=model.config.ttm_dim)
    for a, b in zip(lazy, eager):
        assert a["step_temperature"] == pytest.approx(b["step_temperature"], abs=bound)
        skip = ("latency_s", "step_temperature")
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


@pytest.mark.parametrize("settings", [
    {"kv_keep_above": 0.6, "kv_budget_layer": 1},  # the shipped defaults: nothing reads temperatures
    {"answer_confidence": 0.5, "evict_below": 0.3},  # trial probes roll back; eviction reads every boundary
    {"log_rows": 2},  # logs fill up: settled early, several times per sequence
])
def test_deferred_heats_equal_the_commits(settings, monkeypatch):
    """Without backtracking nothing decides on a heat at its boundary, so with guidance off the
    engine logs the boundary and computes the heats of all of a sequence's steps later, at once
    (engine/step_heats.py). Rows equal the eager commits' (heats to float rounding)."""
    from quasar_dist.data.tasks import make_tasks
    from quasar_dist.model import kv_cache
    from quasar_dist.model import load_with_tokenizer
    from quasar_dist.reasoning.config import ReasoningConfig
    from quasar_dist.reasoning.solve import build_engine, solve_prompts

    settings = dict(settings)
    rows = settings.pop("log_rows", None)
    if rows is not None:
        monkeypatch.setattr(kv_cache, "BOUNDARY_LOG", rows)
    model, tokenizer = load_with_tokenizer("tiny")
    assert model.config.guidance == "off" and model.config.ttm_hops > 0
    prompts = [t["prompt"] for kind in ("arith", "logic") for t in make_tasks(kind, 3, 5, "test", distractors=10)]
    config = ReasoningConfig(max_new_tokens=64, max_batch_size=4, backtrack_below=0.0, **settings)
    deferred_engine, eager_engine = build_engine(model, tokenizer, config), build_engine(model, tokenizer, config)
    eager_engine.runner.eager_refresh = True
    calls = {"record": 0, "copied_boundary_heats": 0}
    for name in calls:  # observed, not replaced: the deferred path must be the one that ran
        method = getattr(deferred_engine.runner, name)
        monkeypatch.setattr(deferred_engine.runner, name,
                            lambda *a, _m=method, _n=name, **k: calls.__setitem__(_n, calls[_n] + 1) or _m(*a, **k))
    deferred = solve_prompts(model, tokenizer, prompts, config, engine=deferred_engine)
    eager = solve_prompts(model, tokenizer, prompts, config, engine=eager_engine)
    assert deferred_engine.runner.lazy_refresh and not eager_engine.runner.lazy_refresh
    assert calls["record"] > 0
    if "evict_below" not in settings:  # eviction settles every boundary before the release
        assert calls["copied_boundary_heats"] > 0  # released sequences' heats, computed together
    assert sum(len(r["step_temperature"]) for r in deferred) >= len(prompts)
    if rows is not None:
        assert max(len(r["step_temperature"]) for r in deferred) > 2 * rows
    bound = rounding_bound(torch.float32, magnitude=2.0, depth=4 + model.config.ttm_hops, width=model.config.ttm_dim)
    for a, b in zip(deferred, eager):
        assert a["step_temperature"] == pytest.approx(b["step_temperature"], abs=bound)
        skip = ("latency_s", "step_temperature")
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_steps_chain_context_equals_the_dense_form(dtype):
    """The deferred heats' layout (K boundaries per slot, all layers, each reading a prefix of
    its slot's entries) gives the dense form's queries for every boundary that sees anything."""
    g = torch.Generator().manual_seed(1)
    layers, rows, k, t, r, hops = 3, 4, 3, 9, 5, 4
    ctx = torch.randn(layers, rows, k, 2 * r, generator=g, dtype=dtype)
    ah = torch.randn(layers, rows, t, r, generator=g, dtype=dtype)
    G = 0.5 * torch.randn(layers, r, r, generator=g, dtype=dtype)
    keep = torch.rand(layers, generator=g, dtype=dtype)
    beta = 4 + 4 * torch.rand(layers, generator=g, dtype=dtype)
    seen = torch.randint(1, t + 1, (rows, k), generator=g)
    seen[1, 2] = 0  # past row 1's log
    visible = torch.arange(t)[None, None, :] < seen[:, :, None]
    dense = dense_chain_context(ctx, ah, visible, G.unsqueeze(1), keep.view(-1, 1, 1, 1), beta.view(-1, 1, 1, 1), hops)
    steps = steps_chain_context(ctx, ah, seen, G, keep, beta, hops)
    assert steps.shape == dense.shape == (layers, rows, k, (hops + 2) * r)
    logged = seen > 0
    assert (dense - steps)[:, logged].abs().max() <= rounding_bound(dtype, magnitude=1.0, depth=hops * 4, width=t * r)
