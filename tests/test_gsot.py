"""The GSoT loop and the CoT baseline above the engine: every stop reason in a crafted case,
backtracking, eviction, determinism, config validation and the Reasoner entry point.

Most cases use a "Markov" model: attention and MLP outputs are zeroed and embeddings are one-hot,
so the next token depends only on the current one through a chosen successor table with chosen
logits (its confidence), and TTM weights pick the temperatures. Each stop condition can then be
forced exactly."""
import math

import pytest
import torch

from quasar_dist.model import QuasarForCausalLM
from quasar_dist.reasoning import Reasoner, ReasoningConfig, solve_prompts
from quasar_dist.reasoning.signals import budget_keep_mask, keep_mask, max_temperature_change, step_heat
from quasar_dist.reasoning.solve import _make_task, build_engine, submission_order
from quasar_dist.reasoning.task import without_timing
from quasar_dist.util.typed_config import ConfigError, from_dict, load_config

from tolerance import model_bound
from test_engine import PROMPTS, WORDS, make_tokenizer, random_model, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


W = {w: i for i, w in enumerate(WORDS)}
SURE, UNSURE = 30.0, 3.0  # successor logit: p ~ 1, p ~ 0.4 (the others have logit 0)
STEPS = {"\n": ("one", SURE), "one": ("\n", SURE), "####": ("7", UNSURE), "7": ("\n", UNSURE)}
PROMPT = "the cat has 3 apples"  # 7 tokens with bos and newline


def markov_model(successors: dict, tau_bias: float = 0.0, cold_words=(), guidance="bias") -> QuasarForCausalLM:
    """next token = successors[current] (default "\\n"), with the given logit; every token's
    temperature is tau_max * sigmoid(tau_bias), or ~0 for cold_words."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model = QuasarForCausalLM(cfg, guidance=guidance)
    d = cfg.hidden_size
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(cfg.vocab_size, d))
        model.lm_head.weight.zero_()
        for word, index in W.items():
            target, logit = successors.get(word, ("\n", SURE))
            model.lm_head.weight[W[target], index] = logit / math.sqrt(d)  # RMSNorm scales e_i by sqrt(d)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
            layer.ttm.A.zero_()
            layer.ttm.B.zero_()
            layer.ttm.w.zero_()
            layer.ttm.b.fill_(tau_bias)
            for word in cold_words:  # tanh(A h) ~ 1 on dim 0 for these tokens, read out as -20
                layer.ttm.A[0, W[word]] = 1.0
            layer.ttm.w[0] = -20.0
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(tiny_config())


def solve(model, tokenizer, prompts=(PROMPT,), **config):
    return solve_prompts(model, tokenizer, list(prompts), ReasoningConfig(**config))


def test_stop_answer(tokenizer):
    model = markov_model({"\n": ("####", SURE), "####": ("7", SURE), "7": ("\n", SURE)})
    (row,) = solve(model, tokenizer)
    assert row["stop_reason"] == "answer" and row["answer"] == "7"
    assert row["steps"] == [] and row["generated_tokens"] == 3 and row["probe_tokens"] == 0


def test_stop_converged_by_confident_probe(tokenizer):
    model = markov_model({**STEPS, "####": ("7", SURE), "7": ("\n", SURE)})
    (row,) = solve(model, tokenizer, answer_confidence=0.9)
    assert row["stop_reason"] == "converged" and row["answer"] == "7"
    assert row["steps"] == ["one"] and row["num_steps"] == 1
    assert row["probe_tokens"] == 3  # forced "####", then "7" and the newline that ends the line
    assert len(row["step_temperature"]) == 1


def test_stop_converged_by_stable_temperatures(tokenizer):
    """An identity TTM never changes temperatures: stable after the second step, and a final
    probe gives the answer although it is not confident."""
    (row,) = solve(markov_model(STEPS), tokenizer, epsilon=1e-3)
    assert row["stop_reason"] == "converged" and row["answer"] == "7"
    assert row["num_steps"] == 2 and row["step_temperature"] == [pytest.approx(1.0)] * 2


def test_stop_max_steps(tokenizer):
    (row,) = solve(markov_model(STEPS), tokenizer, epsilon=0.0, max_steps=3)
    assert row["stop_reason"] == "max_steps" and row["steps"] == ["one"] * 3
    assert row["answer"] == "7"  # the final probe still answers
    assert row["probe_tokens"] == 3  # trial probes are off by default: only the final one ran
    (probed,) = solve(markov_model(STEPS), tokenizer, epsilon=0.0, max_steps=3, answer_confidence=0.99)
    assert probed["stop_reason"] == "max_steps" and probed["probe_tokens"] == 3 * 3  # a trial probe per step


def test_stop_max_tokens(tokenizer):
    model = markov_model({**STEPS, "one": ("one", SURE)})  # a line that never ends
    (row,) = solve(model, tokenizer, max_new_tokens=6)
    assert row["stop_reason"] == "max_tokens" and row["answer"] is None
    assert row["generated_tokens"] == 6 and row["steps"] == ["one one one one one one"]


def test_stop_error_for_a_prompt_too_long(tokenizer):
    model = markov_model(STEPS)
    long_prompt = " ".join(["apples"] * 90)  # 92 tokens; the context holds 96
    rows = solve(model, tokenizer, [long_prompt, PROMPT], epsilon=0.0, max_steps=2)
    assert rows[0]["stop_reason"] == "error" and "92 tokens" in rows[0]["error"]
    assert rows[0]["prompt_tokens"] == 92 and rows[0]["steps"] == [] and rows[0]["answer"] is None
    assert rows[1]["stop_reason"] == "max_steps" and rows[1]["error"] is None
    assert solve(model, tokenizer, [None])[0]["stop_reason"] == "error"


def test_cold_steps_are_backtracked_then_kept(tokenizer):
    """Every step is cold (tau ~ 0.01): each is resampled max_retries times, then kept."""
    model = markov_model(STEPS, tau_bias=-5.0)
    (row,) = solve(model, tokenizer, epsilon=0.0, max_steps=2, max_retries=2, backtrack_below=0.5, evict_below=0.0)
    assert row["stop_reason"] == "max_steps" and row["num_steps"] == 2
    assert row["generated_tokens"] == 2 * 3 * 2  # 2 steps x 3 attempts x ("one", "\n")
    assert all(h < 0.05 for h in row["step_temperature"])
    (no_retry,) = solve(model, tokenizer, epsilon=0.0, max_steps=2, max_retries=0, backtrack_below=0.5, evict_below=0.0)
    assert no_retry["generated_tokens"] == 4


def test_cold_tokens_are_evicted_except_sinks_and_recent(tokenizer):
    model = markov_model(STEPS, cold_words=("cat", "has", "3", "one"))
    common = dict(epsilon=0.0, max_steps=3, backtrack_below=0.0, sink_tokens=2, recent_tokens=2)
    (kept,) = solve(model, tokenizer, evict_below=0.0, **common)
    (evicted,) = solve(model, tokenizer, evict_below=0.5, **common)
    # Prompt: <bos> the cat has 3 apples \n -> "cat has 3" cold (bos, the are sinks anyway).
    # Each step "one \n": "one" is cold but protected while it is among the 2 newest entries.
    assert evicted["kv_evicted"] == 3 + 2 and kept["kv_evicted"] == 0
    assert evicted["kv_total"] == kept["kv_total"] == 7 + 3 * 2
    assert evicted["attended_kv"] < kept["attended_kv"]
    assert evicted["steps"] == kept["steps"] and evicted["answer"] == kept["answer"]


def test_kv_budget_keeps_the_warmest_prompt_entries_after_prefill(tokenizer):
    model = markov_model(STEPS, cold_words=("cat", "has"))
    common = dict(epsilon=0.0, max_steps=3, backtrack_below=0.0, sink_tokens=1, recent_tokens=2)
    (full,) = solve(model, tokenizer, **common)
    (budget,) = solve(model, tokenizer, kv_budget=4, **common)
    (share,) = solve(model, tokenizer, kv_budget=4 / 7, **common)
    # Prompt: <bos> the cat has 3 apples \n: <bos> is the sink, "apples \n" the recent window;
    # of "the cat has 3" the warmest one ("the" and "3" tie, the first wins) fills the budget of 4.
    assert full["kv_evicted"] == 0 and budget["kv_evicted"] == share["kv_evicted"] == 3
    assert budget["steps"] == full["steps"]  # the steps never leave: the budget is the prompt's


def test_budget_keep_mask_fills_the_budget_with_the_warmest():
    tau = torch.tensor([0.1, 0.5, 0.9, 0.2, 0.8, 0.1, 0.1])
    assert budget_keep_mask(tau, 4, 1, 1).tolist() == [True, False, True, False, True, False, True]
    assert budget_keep_mask(tau, 0.5, 1, 1).tolist() == [True, False, True, False, True, False, True]  # ceil(3.5)
    assert budget_keep_mask(tau, 0.1, 1, 1).sum() == 2  # never fewer than the protected ones
    assert budget_keep_mask(tau, 1.0, 0, 0).all()


def test_keep_mask_protects_sinks_and_recent():
    tau = torch.tensor([0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1])
    assert keep_mask(tau, 0.5, 2, 2).tolist() == [True, True, False, True, False, True, True]
    assert keep_mask(tau, 0.0, 0, 0).all()
    positions = torch.tensor([0, 1, 3, 4])
    assert step_heat(positions, torch.tensor([1.0, 1.0, 0.2, 0.4]), step_start=3) == pytest.approx(0.3)
    previous = (torch.tensor([0, 1, 2]), torch.tensor([1.0, 1.0, 1.0]))
    assert max_temperature_change(previous, (positions, torch.tensor([1.0, 1.25, 5.0, 5.0]))) == 0.25


def test_cot_runs_through_the_engine_without_guided_decisions(tokenizer):
    model = markov_model({**STEPS, "####": ("7", SURE)}, tau_bias=-5.0, cold_words=("cat",))
    (row,) = solve(model, tokenizer, mode="cot", max_steps=4, evict_below=0.5, backtrack_below=0.5)
    assert row["stop_reason"] == "max_steps" and row["steps"] == ["one"] * 4 and row["answer"] is None
    assert row["probe_tokens"] == 0 and row["kv_evicted"] == 0 and row["step_temperature"] == []
    assert row["temperature_cache_hits"] == 0  # guidance off: temperatures are never refreshed
    assert row["generated_tokens"] == 8 and model.guidance == "bias"  # the model is given back as it came


def test_rows_are_deterministic_ordered_and_complete(tokenizer):
    model = random_model()
    prompts = PROMPTS + PROMPTS[:2]  # more prompts than slots, duplicates included
    config = dict(temperature=0.9, top_p=0.9, seed=5, max_batch_size=3, max_new_tokens=24, max_steps=4,
                  backtrack_below=0.9, evict_below=0.9, sink_tokens=2, recent_tokens=3, answer_confidence=0.95)
    first = solve(model, tokenizer, prompts, **config)
    second = solve(model, tokenizer, prompts, **config)
    alone = solve(model, tokenizer, prompts[3:4], **{**config, "max_batch_size": 1})
    fields = {"answer", "steps", "num_steps", "prompt_tokens", "generated_tokens", "probe_tokens", "attended_kv",
              "step_temperature", "stop_reason", "latency_s", "error", "temperature_cache_hits",
              "temperature_cache_misses", "kv_evicted", "kv_total", "dropped_token_layers"}
    assert [without_timing(r) for r in first] == [without_timing(r) for r in second]
    # Independent of batch neighbours: the same tokens and decisions; heats agree to float
    # rounding (a batched decode sums over padded lengths in another order).
    batched, solo = without_timing(first[3]), without_timing(alone[0])
    heat_bound = model_bound(model, torch.tensor([model.config.tau_max]))  # heats lie in (0, tau_max)
    assert batched.pop("step_temperature") == pytest.approx(solo.pop("step_temperature"), abs=heat_bound)
    assert batched == solo
    assert without_timing(first[7]) == without_timing(first[0])  # the same prompt, the same result
    for row in first:
        assert set(row) == fields and row["error"] is None and row["latency_s"] > 0
        assert row["stop_reason"] in ("answer", "converged", "max_steps", "max_tokens")
    assert sum(r["kv_evicted"] for r in first) > 0 and sum(r["probe_tokens"] for r in first) > 0


def test_config_validation_and_yaml(tmp_path):
    with pytest.raises(ValueError, match="top_p"):
        ReasoningConfig(top_p=0.0)
    with pytest.raises(ValueError, match="answer_confidence"):
        ReasoningConfig(answer_confidence=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        ReasoningConfig(max_steps=0)
    with pytest.raises(ConfigError, match="unknown key 'max_step'"):
        from_dict(ReasoningConfig, {"max_step": 3})
    with pytest.raises(ConfigError, match="'mode' must be one of"):
        from_dict(ReasoningConfig, {"mode": "tot"})
    assert from_dict(ReasoningConfig, {"guidance": None, "epsilon": 0}).epsilon == 0.0
    (tmp_path / "gsot.yaml").write_text('mode: cot\nmax_steps: 5\nguidance: "off"\n')  # bare off is YAML's false
    config = load_config(ReasoningConfig, tmp_path / "gsot.yaml", overrides={"seed": 3})
    assert (config.mode, config.max_steps, config.guidance, config.seed) == ("cot", 5, "off", 3)


def test_reasoner_entry_point(tokenizer):
    model = markov_model({**STEPS, "####": ("7", SURE), "7": ("\n", SURE)})
    reasoner = Reasoner(model, mode="gsot", tokenizer=tokenizer, max_steps=3)
    rows = reasoner.solve([PROMPT, PROMPT])
    assert [r["answer"] for r in rows] == ["7", "7"] and rows[0]["mode"] == "gsot" and rows[0]["prompt"] == PROMPT
    assert reasoner.solve([PROMPT])[0]["answer"] == "7"  # the engine is reused across calls
    with pytest.raises(ValueError, match="every rank can load"):  # tp > 1 runs a Ray gang
        Reasoner(model, tokenizer=tokenizer, tp=2)
    with pytest.raises(ValueError, match="tokenizer"):
        Reasoner(model)
    with pytest.raises(ConfigError, match="unknown key"):
        Reasoner(model, tokenizer=tokenizer, max_step=3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gsot_on_cuda_matches_cpu(tokenizer):
    """The same rows on the GPU (cache, forwards) as on the CPU (sampling is on the CPU anyway)."""
    config = dict(epsilon=0.0, max_steps=3, evict_below=0.5, sink_tokens=2, recent_tokens=2, temperature=0.8, seed=1)
    rows = {}
    for device in ("cpu", "cuda"):
        model = markov_model(STEPS, cold_words=("cat", "has")).to(device)
        rows[device] = [{k: v for k, v in r.items() if k not in ("latency_s", "step_temperature")}
                        for r in solve(model, tokenizer, [PROMPT, PROMPTS[1]], **config)]
    assert rows["cuda"] == rows["cpu"]


def test_attention_probe_is_the_forward_and_evictors_rank_as_documented(tokenizer):
    from quasar_dist.model.attention_probe import attention_probabilities
    from quasar_dist.reasoning.evictors import EVICTORS, entry_scores

    model = random_model()
    ids = tokenizer.encode_prompt(PROMPTS[3])
    for guidance in ("off", "bias", "scale"):
        model.guidance = guidance
        with torch.no_grad():
            logits, attention = attention_probabilities(model, torch.tensor([ids]))
            full = model(torch.tensor([ids]))
        assert (logits - full).abs().max() <= model_bound(model, full), guidance
        n = len(ids)
        assert attention.shape[-2:] == (n, n) and torch.allclose(attention.sum(-1), torch.ones(()), atol=1e-5)
        assert attention.triu(1).abs().max() == 0  # causal
    tau = torch.linspace(0.1, 1.0, n)
    scores = {m: entry_scores(m, model, ids, tau, seed=3) for m in EVICTORS}
    assert all(s.shape == (n,) for s in scores.values())
    assert torch.equal(scores["ttm"], tau) and scores["streaming"].argmax() == n - 1
    assert torch.equal(scores["random"], entry_scores("random", model, ids, tau, seed=3))  # seeded
    assert torch.allclose(scores["tova"], attention[:, :, -1].sum((0, 1)))


@pytest.mark.parametrize("evictor", ["streaming", "random", "snapkv", "h2o", "tova"])
def test_every_baseline_evicts_to_the_same_budget(tokenizer, evictor):
    model = random_model()
    common = dict(epsilon=0.0, max_steps=2, max_new_tokens=12, backtrack_below=0.0, sink_tokens=1, recent_tokens=2)
    (ttm,) = solve(model, tokenizer, [PROMPTS[3]], kv_budget=0.5, **common)
    (row,) = solve(model, tokenizer, [PROMPTS[3]], kv_budget=0.5, kv_evictor=evictor, **common)
    assert row["error"] is None and row["kv_evicted"] == ttm["kv_evicted"] > 0


def test_sequences_are_submitted_shortest_prompt_first(tokenizer):
    """The engine gets the shortest prompts first (sequences decoding together then have similar
    lengths, docs/engine.md), ties in input order; the rows still come back in input order."""
    prompts = sorted(PROMPTS, key=len, reverse=True) + [PROMPTS[0]]
    engine = build_engine(random_model(), tokenizer, ReasoningConfig(), most_sequences=1)
    tasks = [_make_task(i, p, tokenizer, ReasoningConfig(), engine, True) for i, p in enumerate(prompts)]
    order = [t.index for t in submission_order(tasks)]
    lengths = [len(tasks[i].seq.prompt_ids) for i in order]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    ties = [i for i in order if len(tasks[i].seq.prompt_ids) == len(tasks[-1].seq.prompt_ids)]
    assert len(ties) >= 2 and ties == sorted(ties)  # the duplicate prompt: stable
