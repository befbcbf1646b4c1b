"""The inference engine on CPU with a small random model: continuous batching, segment
semantics, rollback, eviction, temperature refresh, sampling, counters and FLOPs."""

import pytest
import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers

from quasar_dist.engine import Engine, Event, SamplingParams, Sequence, StopRule, flops_for, generate
from quasar_dist.model import ModelConfig, QuasarForCausalLM, TextTokenizer
from quasar_dist.parallel.toy_model import randomise_ttm

from tolerance import model_bound


pytestmark = pytest.mark.usefixtures("one_thread")


WORDS = (
    ["<pad>", "<bos>", "<eos>", "<unk>", "\n", "####"] + [str(d) for d in range(10)]
    + "one two three plus minus is the cat dog has apples how many so yes no and more".split()
)
NL, EOS = WORDS.index("\n"), WORDS.index("<eos>")
PROMPTS = [
    "the cat has 3 apples", "how many", "one plus two is", "the dog has more apples and the cat has 7",
    "so", "yes no yes no yes", "3 4 5",
]


def tiny_config(**overrides) -> ModelConfig:
    shape = dict(
        vocab_size=len(WORDS), hidden_size=48, intermediate_size=96, num_layers=2, num_heads=4,
        num_kv_heads=2, ttm_dim=8, max_position_embeddings=96, bos_token_id=1, eos_token_ids=[EOS],
        guidance="bias",
    )
    return ModelConfig(**{**shape, **overrides})


def make_tokenizer(cfg: ModelConfig) -> TextTokenizer:
    """Word level: one token per word, "\\n" its own token (the step delimiter)."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("[ \t]+"), behavior="removed"),
        pre_tokenizers.Split("\n", behavior="isolated"),
    ])
    tok.add_special_tokens(["<pad>", "<bos>", "<eos>", "<unk>"])
    return TextTokenizer(tok, cfg)


def random_model(guidance="bias", seed=0) -> QuasarForCausalLM:
    """Random weights with a TTM far from identity (guidance really acts), attention and MLP
    strong enough that outputs depend on context, and newlines frequent enough to make steps."""
    torch.manual_seed(seed)
    model = QuasarForCausalLM(tiny_config(), guidance=guidance)
    randomise_ttm(model, seed + 3)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(4)
            layer.mlp.down_proj.weight.mul_(4)
        model.lm_head.weight[NL] *= 1.5
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(tiny_config())


def new_engine(model, tokenizer, num_slots=3, max_len=None) -> Engine:
    return Engine(model, StopRule.from_tokenizer(tokenizer), num_slots=num_slots, max_len=max_len)


def segment_ids(prompt_len: int, output: list[int]) -> list[int]:
    """The model's segments: the prompt is 0, each line after it the next one."""
    seg, s = [0] * prompt_len, 1
    for token in output:
        seg.append(s)
        s += token == NL
    return seg


def reference_greedy(model, tokenizer, prompt_ids, max_new_tokens):
    """Greedy decoding by full forwards with segment ids: no cache, no engine."""
    rule, ids, out = StopRule.from_tokenizer(tokenizer), list(prompt_ids), []
    line_start = 0
    with torch.no_grad():
        while True:
            seg = segment_ids(len(prompt_ids), out)
            logits = model(torch.tensor([ids]), segment_ids=torch.tensor([seg]))[0, -1]
            token = int(logits.argmax())
            out.append(token)
            if token == EOS or len(out) >= max_new_tokens:
                return out
            if token == NL:
                if rule.is_answer_line(out[line_start:]):
                    return out
                line_start = len(out)
            ids.append(token)


def test_continuous_batching_equals_decoding_alone(model, tokenizer, monkeypatch):
    """7 prompts through 3 slots == each prompt alone == full forwards with segment ids; the
    cache is allocated once and slots are reused as sequences finish."""
    allocations = []
    original = QuasarForCausalLM.allocate_cache
    monkeypatch.setattr(QuasarForCausalLM, "allocate_cache", lambda self, *a: allocations.append(a) or original(self, *a))
    prompts = [tokenizer.encode_prompt(p) for p in PROMPTS]
    engine = new_engine(model, tokenizer, num_slots=3)
    batched = generate(engine, prompts, max_new_tokens=16)
    assert len(allocations) == 1
    assert sorted({s.slot for s in batched}) == [0, 1, 2]
    assert sum(s.num_steps for s in batched) >= 5  # the runs really cross step boundaries
    for ids, seq in zip(prompts, batched):
        alone = generate(new_engine(model, tokenizer, num_slots=1), [ids], max_new_tokens=16)[0]
        assert seq.output_ids == alone.output_ids
        assert seq.counters == alone.counters
        assert seq.output_ids == reference_greedy(model, tokenizer, ids, 16)


def test_counters_and_flops(model, tokenizer):
    ids = tokenizer.encode_prompt(PROMPTS[6])
    seq = generate(new_engine(model, tokenizer, num_slots=1), [ids], max_new_tokens=12)[0]
    c, layers, p = seq.counters, model.config.num_layers, len(ids)
    fed = len(seq.output_ids) - 1  # the token that stopped the sequence is never fed
    assert c.prompt_tokens == p and c.generated_tokens == len(seq.output_ids) and c.probe_tokens == 0
    assert c.attended_kv == layers * (p * (p + 1) // 2 + sum(p + k for k in range(1, fed + 1)))
    assert c.temperature_cache_misses == layers * (p + fed)
    # Commits after the prompt and after every fed newline, each refreshing every live entry.
    newlines = [k for k, t in enumerate(seq.output_ids[:fed]) if t == NL]
    assert seq.num_steps == len(newlines) > 0
    assert c.temperature_cache_hits == layers * (p + sum(p + k + 1 for k in newlines))
    cfg = model.config
    weights = sum(m.weight.numel() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear))
    weights += sum(layer.ttm.A.numel() for layer in model.model.layers)
    assert flops_for(cfg, 10, 0) == 2.0 * weights * 10
    assert flops_for(cfg, 0, 7) == 4.0 * cfg.head_dim * cfg.num_heads * 7


def paused_after_prompt(engine, ids, **kwargs):
    seq = Sequence(0, ids, max_new_tokens=kwargs.pop("max_new_tokens", 64), pause_at_boundaries=True, **kwargs)
    engine.add(seq)
    assert engine.step() == [seq] and seq.event is Event.BOUNDARY
    return seq


def run_tokens(engine, seq, n):
    """Feed up to n tokens, passing step boundaries on the way (stops early at a stop)."""
    engine.resume(seq)
    for _ in range(n):
        if seq.event is Event.STOPPED:
            return
        engine.step()
        if seq.event is Event.BOUNDARY:
            engine.resume(seq)


def slot_state(cache, slot):
    n = int(cache.length[slot])
    state = {name: getattr(cache, name)[:, slot, :, :n].clone() for name in ("k", "v")}  # [L, Hkv, n, D]
    state.update({name: getattr(cache, name)[:, slot, :n].clone() for name in ("ah", "log_tau")})
    state["dead"] = torch.isinf(cache.log_tau[:, slot, n:]).all()
    state.update({name: getattr(cache, name)[:, slot].clone() for name in ("bc", "ctx_sum", "pend_sum")})
    state.update(positions=cache.positions[slot, :n].clone(), length=cache.length[slot].clone(),
                 next_pos=cache.next_pos[slot].clone(), ctx_count=cache.ctx_count[slot].clone(),
                 pend_count=cache.pend_count[slot].clone())
    return state


def test_rollback_restores_cache_exactly(model, tokenizer):
    engine = new_engine(model, tokenizer, num_slots=2)
    other = paused_after_prompt(engine, tokenizer.encode_prompt(PROMPTS[3]))  # a neighbour in slot 0
    seq = Sequence(1, tokenizer.encode_prompt(PROMPTS[1]), max_new_tokens=64, pause_at_boundaries=True)
    engine.add(seq)
    engine.step()
    cache = engine.runner.cache
    ckpt, before, neighbour = engine.checkpoint(seq), slot_state(cache, 1), slot_state(cache, 0)
    run_tokens(engine, seq, 9)
    first_try = list(seq.output_ids)
    assert seq.num_steps > 0 and not torch.equal(cache.bc[:, 1], before["bc"])  # a commit happened
    engine.rollback(seq, ckpt)
    after = slot_state(cache, 1)
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert all(torch.equal(slot_state(cache, 0)[k], v) for k, v in neighbour.items())
    assert seq.output_ids == [] and torch.equal(seq.logits, ckpt.logits)
    run_tokens(engine, seq, 9)  # the same greedy continuation, token for token
    assert seq.output_ids == first_try
    engine.release(other)


def test_eviction_drops_compute_and_evicting_nothing_changes_nothing(model, tokenizer):
    ids = tokenizer.encode_prompt(PROMPTS[3])
    runs = {}
    for case in ("none", "keep_all", "half"):
        engine = new_engine(model, tokenizer, num_slots=1)
        seq = paused_after_prompt(engine, ids)
        n = seq.num_cached
        if case == "keep_all":
            assert engine.evict(seq, torch.ones(n, dtype=torch.bool)) == 0
        if case == "half":
            keep = torch.arange(n) % 2 == 0
            assert engine.evict(seq, keep) == n - int(keep.sum())
            cache = engine.runner.cache  # poison what is left behind: it must never be read
            for buf in (cache.k, cache.v):  # [L, slots, Hkv, max_len, D]
                buf[:, 0, :, seq.num_cached:] = float("nan")
            for buf in (cache.ah, cache.log_tau):
                buf[:, 0, seq.num_cached:] = float("nan")
        snap = engine.runner.snapshot(0)  # peek at the next logits, then undo the write
        logits = engine.runner.forward([0], [[WORDS.index("so")]])
        engine.runner.rollback(0, snap)
        live, attended, misses = seq.num_cached, seq.counters.attended_kv, seq.counters.temperature_cache_misses
        run_tokens(engine, seq, 6)
        fed = (seq.counters.temperature_cache_misses - misses) // model.config.num_layers
        attended = seq.counters.attended_kv - attended
        assert attended == model.config.num_layers * sum(live + k for k in range(1, fed + 1))
        runs[case] = (logits, seq.output_ids, attended, live)
    assert torch.equal(runs["none"][0], runs["keep_all"][0])
    assert runs["none"][1:] == runs["keep_all"][1:]
    assert torch.isfinite(runs["half"][0]).all()
    assert runs["half"][3] == (len(ids) + 1) // 2 and runs["half"][2] < runs["none"][2]


def test_temperature_refresh_equals_full_recompute(model, tokenizer):
    """At every boundary, cached temperatures (refreshed from cached A h) == temperatures a full
    forward with segment ids computes for the next step's context."""
    check_refresh_at_boundaries(model, tokenizer, max_new_tokens=24)


def check_refresh_at_boundaries(model, tokenizer, max_new_tokens: int) -> None:
    """The check of the test above, for any model (also tests/test_ttm_hops.py)."""
    engine = new_engine(model, tokenizer, num_slots=2)
    ids = tokenizer.encode_prompt(PROMPTS[3])
    seq = paused_after_prompt(engine, ids, max_new_tokens=max_new_tokens)
    cache, checked = engine.runner.cache, 0
    while seq.event is Event.BOUNDARY:
        fed = ids + seq.output_ids
        seg = segment_ids(len(ids), seq.output_ids + [NL])  # one more token opens the next segment
        with torch.no_grad():
            _, temps = model(torch.tensor([fed + [NL]]), segment_ids=torch.tensor([seg]), return_temperatures=True)
        n, s = len(fed), seq.num_steps + 1
        for layer, log_tau in enumerate(temps):
            assert (cache.log_tau[layer, seq.slot, :n] - log_tau[0, s, :n]).abs().max() <= model_bound(model, log_tau)
        positions, tau = engine.temperatures(seq)
        assert torch.equal(positions, torch.arange(n))
        expected = torch.stack([t[0, s, :n] for t in temps]).exp().mean(0)
        assert (tau - expected).abs().max() <= model_bound(model, expected)
        checked += 1
        engine.resume(seq)
        while seq.event is None:
            engine.step()
    assert checked >= 3


def test_sampling_is_seeded_and_independent_of_batch(model, tokenizer):
    prompts = [tokenizer.encode_prompt(p) for p in PROMPTS[:4]]
    params = [SamplingParams(temperature=1.0, top_p=0.9, seed=100 + i) for i in range(4)]
    alone = generate(new_engine(model, tokenizer, num_slots=1), [prompts[0]], [params[0]], max_new_tokens=20)[0]
    again = generate(new_engine(model, tokenizer, num_slots=1), [prompts[0]], [params[0]], max_new_tokens=20)[0]
    # Same request last in a batch of four, in a different slot, next to other sampled requests.
    batch = generate(new_engine(model, tokenizer, num_slots=3), prompts[1:] + prompts[:1], params[1:] + params[:1], max_new_tokens=20)
    assert alone.output_ids == again.output_ids == batch[-1].output_ids
    other_seed = SamplingParams(temperature=1.0, top_p=0.9, seed=7)
    different = generate(new_engine(model, tokenizer, num_slots=1), [prompts[0]], [other_seed], max_new_tokens=20)[0]
    greedy = generate(new_engine(model, tokenizer, num_slots=1), [prompts[0]], max_new_tokens=20)[0]
    assert different.output_ids != alone.output_ids != greedy.output_ids


def test_top_p_keeps_the_nucleus_and_draws_follow_the_distribution():
    from quasar_dist.engine.sampler import choose

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 4000  # one batch: row i is draw i of one sequence
    logits = probs.log().expand(n, 4)
    drawn = choose(logits, temperatures=[1.0] * n, top_ps=[0.7] * n, seeds=[3] * n, draws=list(range(n))).tokens
    assert set(drawn.tolist()) == {0, 1}
    share = (drawn == 0).float().mean().item()  # 0.5 / 0.8 of the nucleus; 4000 draws: sd 0.008
    assert abs(share - 0.625) < 0.04
    full = choose(logits, temperatures=[1.0] * n, top_ps=[1.0] * n, seeds=[3] * n, draws=list(range(n))).tokens
    counts = torch.bincount(full, minlength=4).float() / n
    assert (counts - probs).abs().max() < 0.04
    greedy = choose(logits[:2], temperatures=[0.0, 1.0], top_ps=[0.1, 0.1], seeds=[3, 3], draws=[0, 0]).tokens
    assert greedy.tolist() == [0, 0]  # temperature 0 is the argmax; top_p 0.1 keeps only it


def test_draws_do_not_depend_on_the_batch():
    from quasar_dist.engine.sampler import choose

    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(1))
    args = dict(temperatures=[1.0] * 5, top_ps=[0.9] * 5, seeds=[11, 12, 13, 14, 15], draws=[0, 4, 2, 9, 1])
    together = choose(logits, **args).tokens
    for i in range(5):
        alone = choose(logits[i : i + 1], **{k: v[i : i + 1] for k, v in args.items()}).tokens
        assert int(alone) == int(together[i])


def test_context_limit_stops_generation(model, tokenizer):
    ids = tokenizer.encode_prompt(PROMPTS[3])
    seq = generate(new_engine(model, tokenizer, num_slots=1, max_len=len(ids) + 5), [ids], max_new_tokens=50)[0]
    assert seq.stop_reason in ("context", "eos", "answer")
    assert seq.num_positions <= len(ids) + 5


def test_temperatures_are_snapshots_not_views_of_the_cache(model, tokenizer):
    """GSoT keeps the last boundary's (positions, tau) to measure how temperatures moved; a
    view into the cache would silently change under later writes and evictions."""
    engine = new_engine(model, tokenizer, num_slots=1)
    seq = paused_after_prompt(engine, tokenizer.encode_prompt(PROMPTS[3]))
    positions, tau = engine.temperatures(seq)
    kept_positions, kept_tau = positions.clone(), tau.clone()
    keep = torch.arange(positions.numel()) % 2 == 0
    engine.evict(seq, keep)
    run_tokens(engine, seq, 4)
    assert torch.equal(positions, kept_positions) and torch.equal(tau, kept_tau)


def test_compaction_moves_sequences_without_changing_them(model, tokenizer, monkeypatch):
    """With nothing waiting, sequences of high slots move into freed low ones (their cache rows
    go with them), so the decode batch stays a dense slot range; outputs are unchanged."""
    from quasar_dist.engine.scheduler import Scheduler

    prompts = [tokenizer.encode_prompt(p) for p in PROMPTS]
    limits = [3, 16, 4, 16, 2, 16, 16]  # early finishers free low slots while others still run
    def run(engine):
        seqs = [Sequence(i, ids, max_new_tokens=n) for i, (ids, n) in enumerate(zip(prompts, limits))]
        for seq in seqs:
            engine.add(seq)
        while engine.has_work():
            for seq in engine.step():
                engine.release(seq)
        return [(s.output_ids, s.counters) for s in seqs]

    original = Scheduler.compact
    monkeypatch.setattr(Scheduler, "compact", lambda self: [])
    static = run(new_engine(model, tokenizer, num_slots=7))  # no compaction: holes stay holes
    moves = []
    monkeypatch.setattr(Scheduler, "compact", lambda self: _record(original(self), moves))
    compacted = run(new_engine(model, tokenizer, num_slots=7))
    assert moves, "the workload never left a hole below a running sequence"
    assert compacted == static


def _record(made: list, log: list) -> list:
    log.extend(made)
    return made


def test_exit_oracle_ceiling_counts_tokens_after_the_earliest_stable_right_answer():
    from quasar_dist.bench.exit_oracle import _ceiling, _Track

    tracks = [
        _Track("7", probes=[(0, None), (4, "7"), (9, "3"), (12, "7")], final="7", generated=20),  # stable from 12
        _Track("5", probes=[(0, "5"), (6, "5")], final="5", generated=10),  # right from the start
        _Track("2", probes=[(0, "2")], final="9", generated=30),  # wrong anyway: exits at once
    ]
    out = _ceiling(tracks)
    assert out["accuracy"] == 2 / 3
    assert out["oracle_token_saving"] == (8 + 10 + 30) / 60
    assert out["oracle_token_saving_correct_tasks_only"] == (8 + 10) / 60
    assert out["first_step_probe_accuracy"] == 2 / 3  # tasks 2 and 3 answer right at once


def test_exit_oracle_runs_on_a_model(model, tokenizer):
    from quasar_dist.bench.exit_oracle import exit_oracle

    tasks = [{"prompt": p, "answer": "7"} for p in PROMPTS[:3]]
    out = exit_oracle(model, tokenizer, tasks, max_new_tokens=12, num_slots=2)
    assert out["tasks"] == 3 and out["generated_tokens"] > 0 and 0.0 <= out["oracle_token_saving"] <= 1.0


def test_prefill_groups_bound_tokens_padding_and_scores():
    """Every new prompt in exactly one prefill group; a group of more than one prompt stays
    within the token, padding and attention-score bounds (a single prompt may exceed them)."""
    from quasar_dist.engine import scheduler as sch

    lengths = [1, 3, 5, 40, 41, 42, 43, 44, 200, 201, 300, 900, 7, 7, 7] + [60] * 80
    seqs = [Sequence(i, [1] * n, SamplingParams(), max_new_tokens=1) for i, n in enumerate(lengths)]
    groups = sch.prefill_groups(seqs)
    assert sorted(s.seq_id for g in groups for s in g) == list(range(len(seqs)))
    for g in groups:
        longest, real = max(len(s.feed) for s in g), sum(len(s.feed) for s in g)
        padded = len(g) * longest
        if len(g) > 1:
            assert padded <= sch.MAX_PREFILL_TOKENS
            assert padded - real <= sch.PAD_SHARE * padded
            assert len(g) * longest**2 <= sch.MAX_PREFILL_TOKENS**2 // 2  # attention scores (was 4M)
    assert len(groups) < len(seqs)  # prompts of equal length do share a forward
