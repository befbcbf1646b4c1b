"""The TTM objective that learns importance (issue #14): relaxed eviction in the training
forward, the budget hinge and its ramp, and the AUROC of temperatures against ground truth."""
import math

import pytest
import torch

from quasar_dist.bench.relevance import auroc, relevance_auroc, token_labels
from quasar_dist.data.tasks import make_tasks
from quasar_dist.model import TextTokenizer, load_model, resolve_model_path
from quasar_dist.train.losses import RelaxedEviction, budget_loss, keep_logit_of, keep_target

TAU_MAX = 2.0


def _segments(prompt_len: int, step_lens=(3, 4)) -> torch.Tensor:
    seg = [0] * prompt_len
    for s, n in enumerate(step_lens, start=1):
        seg += [s] * n
    return torch.tensor([seg])


def test_relaxed_eviction_decides_prompt_keys_for_step_queries_only():
    seg = _segments(10)
    ev = RelaxedEviction(seg, torch.tensor([10]), sinks=1, window=3, gamma=0.5, tau_max=TAU_MAX)
    gated = ev.gated[0]  # [S, T]
    assert not gated[0].any()  # the prompt's own queries keep their soft temperatures
    for s in (1, 2):
        assert gated[s].tolist() == [False] + [True] * 6 + [False] * 3 + [False] * 7  # sink, window, steps


def _log_tau(z):
    return math.log(TAU_MAX) + torch.nn.functional.logsigmoid(z)


def test_relaxed_decision_is_close_to_hard_and_untouched_elsewhere():
    seg = _segments(10)
    ev = RelaxedEviction(seg, torch.tensor([10]), sinks=1, window=3, gamma=0.1, tau_max=TAU_MAX,
                         generator=torch.Generator().manual_seed(0))
    z = torch.full((1, 3, 17), 8.0)
    z[..., 4] = -8.0  # one cold key
    log_tau = _log_tau(z)
    assert torch.allclose(keep_logit_of(log_tau, TAU_MAX), z, atol=1e-3)
    assert torch.equal(ev(log_tau), log_tau)  # nothing decided yet: the first forward
    ev.decide([log_tau, log_tau])
    out = ev(log_tau)
    assert torch.equal(out[~ev.gated], log_tau[~ev.gated])
    kept = out[0, 1:, 1:7]  # decided pairs
    assert (kept[:, [0, 1, 2, 4, 5]] > math.log(TAU_MAX) - 1e-3).all()  # warm: kept (bias ~ 0 beyond log tau_max)
    assert (kept[:, 3] < math.log(TAU_MAX) - 20).all()  # cold: evicted (bias below -20)


def test_budget_hinge_and_ramp():
    assert budget_loss(torch.tensor(0.2), 0.3).item() == 0.0  # under budget: free
    assert budget_loss(torch.tensor(0.5), 0.3).item() == pytest.approx(0.2)
    assert keep_target(0, 0.25, 100) == 1.0 and keep_target(50, 0.25, 100) == pytest.approx(0.625)
    assert keep_target(1000, 0.25, 100) == 0.25
    seg = _segments(10)
    ev = RelaxedEviction(seg, torch.tensor([10]), sinks=1, window=3, gamma=0.5, tau_max=TAU_MAX)
    half = torch.full((1, 3, 17), math.log(TAU_MAX / 2))  # keep probability 0.5 everywhere
    ev.decide([half, half])
    assert ev.kept_fraction().item() == pytest.approx(0.5)


def test_auroc_counts_pairs_and_ties():
    labels = torch.tensor([1, 1, 0, 0])
    assert auroc(torch.tensor([4.0, 3.0, 2.0, 1.0]), labels) == 1.0
    assert auroc(torch.tensor([1.0, 2.0, 3.0, 4.0]), labels) == 0.0
    assert auroc(torch.ones(4), labels) == 0.5
    assert auroc(torch.tensor([3.0, 1.0, 2.0, 0.0]), labels) == 0.75
    assert auroc(torch.ones(2), torch.tensor([1, 1])) is None


@pytest.fixture(scope="module")
def shipped():
    folder = resolve_model_path("tiny")
    model = load_model(folder)
    return model, TextTokenizer.from_folder(folder, model.config)


def test_token_labels_follow_the_relevant_spans(shipped):
    _, tokenizer = shipped
    (task,) = make_tasks("arith", 1, 5, "test", distractors=6)
    ids, labels = token_labels(tokenizer, task["prompt"], task["relevant_spans"])
    assert ids == tokenizer.encode_prompt(task["prompt"])
    assert labels[0] is None and labels[-1] is None  # bos and the closing newline
    offsets = tokenizer.tokenizer.encode(task["prompt"] + "\n", add_special_tokens=False).offsets
    relevant_text = "".join(task["prompt"][s:e] for (s, e), lab in zip(offsets, labels[1:]) if lab == 1)
    question = task["prompt"][task["prompt"].rindex(".") + 1 :].replace(" ", "")
    assert question in relevant_text.replace(" ", "")  # the question is relevant
    assert 0 < sum(lab == 1 for lab in labels if lab is not None) < len(labels) - 2


def test_relevance_auroc_reports_every_layer(shipped):
    model, tokenizer = shipped
    tasks = make_tasks("logic", 3, 5, "test", distractors=8)
    report = relevance_auroc(model, tokenizer, tasks)
    assert report["tasks"] == 3 and len(report["auroc_per_layer"]) == model.config.num_layers
    assert 0.0 <= report["auroc_layer_mean"] <= 1.0


def test_one_decision_per_token_for_every_layer_and_step():
    seg = _segments(10)
    ev = RelaxedEviction(seg, torch.tensor([10]), sinks=1, window=3, gamma=0.1, tau_max=TAU_MAX,
                         generator=torch.Generator().manual_seed(0))
    warm, cold = torch.full((1, 3, 17), 8.0), torch.full((1, 3, 17), 8.0)
    cold[0, 1, 4] = -30.0  # one layer finds key 4 useless under step 1's context
    cold[0, 2, 4] = 8.0  # and warm again under step 2's
    cold[0, 1, 5] = warm[0, 1, 5] = -30.0  # key 5: useless to both layers
    ev.decide([_log_tau(warm), _log_tau(cold)])
    assert ev.keep_p[0, 4].item() == pytest.approx(1.0, abs=1e-3)  # one layer wants it: it stays
    assert ev.keep_p[0, 5].item() < 1e-3
    layer_a, layer_b = ev(_log_tau(warm)), ev(_log_tau(cold))
    gate = layer_a[0, 1, 4] - _log_tau(warm)[0, 1, 4]
    assert gate == layer_a[0, 2, 4] - _log_tau(warm)[0, 2, 4]  # the same decision for every step
    assert gate == layer_b[0, 2, 4] - _log_tau(cold)[0, 2, 4]  # and for every layer


def test_kv_budget_curve_has_a_row_per_method_and_budget(shipped, tmp_path):
    from quasar_dist.bench.kv_budget import METHODS, kv_budget_curve, long_tasks
    from quasar_dist.reasoning.config import ReasoningConfig
    from quasar_dist.reasoning.evictors import EVICTORS

    model, tokenizer = shipped
    tasks = long_tasks(2, distractors=(10,))
    base = ReasoningConfig(max_new_tokens=48, max_batch_size=8)
    rows = kv_budget_curve(model, tokenizer, tasks, base, png=tmp_path / "kv.png", budgets=(0.25,))
    methods = METHODS if model.config.ttm_context == "last" else EVICTORS  # prefill dropping needs "last"
    assert [(r["method"], r["budget"]) for r in rows] == [("full", 1.0)] + [(m, 0.25) for m in methods]
    full = rows[0]
    for r in rows[1:]:
        assert {"accuracy", "flops_per_task", "wall_s", "kv_kept_fraction"} <= set(r)
        assert r["kv_kept_fraction"] < 0.6 and r["flops_per_task"] < full["flops_per_task"]
    assert (tmp_path / "kv.png").stat().st_size > 1000


def test_training_relevance_labels_match_the_bench_labels(shipped):
    from quasar_dist.train.batches import collate_relevance, encode_task

    _, tokenizer = shipped
    raw = tokenizer.tokenizer
    (task,) = make_tasks("logic", 1, 5, "test", distractors=6)
    ids, prompt_len, labels = encode_task(raw, task, labels=True)
    assert encode_task(raw, task)[:2] == (ids, prompt_len)
    _, bench = token_labels(tokenizer, task["prompt"], task["relevant_spans"])
    assert len(labels) == prompt_len == len(bench)
    assert labels == [-1 if b is None else b for b in bench]
    (plain,) = make_tasks("logic", 1, 5, "test")  # no spans: nothing labelled
    assert set(encode_task(raw, plain, labels=True)[2]) == {-1}
    padded = collate_relevance([labels, [1, 0]], len(ids))
    assert padded.shape == (2, len(ids)) and padded[1, 2:].eq(-1).all() and padded[0, prompt_len:].eq(-1).all()


def test_relevance_loss_is_cross_entropy_of_labelled_prompt_keys_under_step_contexts():
    from quasar_dist.train.losses import relevance_loss

    tau_max = 2.0
    log_tau = torch.log(torch.tensor([0.5, 1.5, 1.0, 1.0])).view(1, 1, 4).expand(1, 3, 4).clone()  # [B, S, T]
    relevance = torch.tensor([[0, 1, -1, -1]], dtype=torch.int8)
    visible = torch.ones(1, 3, 4, dtype=torch.bool)
    loss = relevance_loss([log_tau, log_tau], relevance, visible, tau_max)
    expected = -(math.log(1 - 0.25) + math.log(0.75)) / 2  # p = tau / tau_max = 0.25 (label 0), 0.75 (label 1)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    visible[:, 1:] = False  # no step sees the keys: nothing to learn
    assert relevance_loss([log_tau], relevance, visible, tau_max).item() == 0.0


def test_relevance_loss_under_the_first_step_only_ignores_later_contexts():
    from quasar_dist.train.losses import relevance_loss

    tau_max = 2.0
    first = torch.log(torch.tensor([0.5, 1.5]))  # p 0.25 (label 0), 0.75 (label 1) under step 1
    later = torch.log(torch.tensor([1.9, 0.1]))  # wrong under step 2: counted only with every step
    log_tau = torch.stack([first, first, later]).unsqueeze(0)  # [B, S = 3, T = 2]
    relevance = torch.tensor([[0, 1]], dtype=torch.int8)
    visible = torch.ones(1, 3, 2, dtype=torch.bool)
    only_first = relevance_loss([log_tau], relevance, visible, tau_max, first_step_only=True)
    assert only_first.item() == pytest.approx(-math.log(0.75), rel=1e-5)
    assert relevance_loss([log_tau], relevance, visible, tau_max).item() > only_first.item() + 0.5
