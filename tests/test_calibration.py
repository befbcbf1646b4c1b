"""The measuring tools of issues #14/#15 run end to end on a small random model (ttm_context
last, so every setting, prefill dropping included, is exercised): the held-out relevance report
and the calibration of GSoT defaults on the validation split."""
import json

import pytest
import torch

from quasar_dist.bench.calibrate import admissible, calibrate, candidates, held_out, task_sets
from quasar_dist.bench.relevance_plot import relevance_section
from quasar_dist.model import TextTokenizer, load_model
from quasar_dist.parallel.toy_model import write_toy_model
from quasar_dist.reasoning.config import ReasoningConfig
from quasar_dist.train.relevance_report import relevance_report


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = write_toy_model(tmp_path_factory.mktemp("toy"), num_layers=3)
    model = load_model(folder)
    assert model.config.ttm_context == "last"
    return folder, model, TextTokenizer.from_folder(folder, model.config)


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_relevance_report_measures_budgets_thresholds_and_prefill_dropping(toy, tmp_path):
    folder, _, _ = toy
    png = tmp_path / "relevance.png"
    report = relevance_report(str(folder), n=2, distractors=(0, 4), kv_budgets=(0.5,), keep_above=(1.0,), prefill_layer=1,
                              png=png)
    assert report["plot"] == str(png) and _is_png(png)
    assert json.loads(json.dumps(report))["prefill_layer"] == 1
    rows = report["rows"]
    assert [(r["kind"], r["distractors"]) for r in rows] == [("arith", 0), ("arith", 4), ("logic", 0), ("logic", 4)]
    for r in rows:
        assert 0.0 <= r["evicted_accuracy_0.5"] <= 1.0 and 0.0 < r["kept_fraction_0.5"] < 1.0
        assert r["flops_ratio_0.5"] < 1.0  # dropped in prefill: cheaper than CoT with the full cache
        assert 0.0 < r["kept_fraction_above_1.0"] <= 1.0
    assert all("auroc_layer_mean" in r for r in rows if r["distractors"] > 0)


def test_bench_section_shows_temperatures_against_relevance(toy, tmp_path):
    """`temperature_relevance`: per kind the AUROC of every layer, of the layer mean and max,
    on held-out tasks with their labels; the figure (heat strip + bars) is a real PNG."""
    _, model, tokenizer = toy
    png = tmp_path / "bench_relevance.png"
    section = relevance_section(model, tokenizer, 2, png, distractors=4)
    assert section["distractors"] == 4 and section["plot"] == png.name and _is_png(png)
    for kind in ("arith", "logic"):
        row = section[kind]
        assert row["tasks"] == 2 and len(row["auroc_per_layer"]) == model.config.num_layers
        assert all(0.0 <= v <= 1.0 for v in [*row["auroc_per_layer"], row["auroc_layer_mean"], row["auroc_layer_max"]])


def test_calibration_picks_on_validation_and_reports_test(toy):
    _, model, tokenizer = toy
    sets = task_sets(2, "val", 11)
    assert {t["id"].split("-")[1] for s in sets.values() for t in s} == {"val"}
    assert len(candidates(3, "last")) > len(candidates(3, "mean"))  # prefill layers need "last"
    base = ReasoningConfig(max_new_tokens=24, max_batch_size=8)
    torch.manual_seed(0)
    grid = [candidates(3, "last")[i] for i in (0, 4, 6)]  # defaults, a threshold, the same in prefill
    assert grid[1][1]["kv_budget_layer"] is None and grid[2][1]["kv_budget_layer"] == 1
    result = calibrate(model, tokenizer, 2, base, max_loss=1.0, grid=grid)  # any accuracy passes: a random model
    assert result["split"] == "val" and [r["name"] for r in result["rows"]] == [name for name, _ in grid]
    cot = result["cot"]
    picked = next(r for r in result["rows"] if r["name"] == result["pick"])
    assert admissible(picked, cot, 1.0)
    assert all(picked["long"]["flops_per_task"] <= r["long"]["flops_per_task"] for r in result["rows"] if r["admissible"])
    test = held_out(model, tokenizer, 2, base, result["pick_overrides"])
    assert test["split"] == "test" and set(test["summary"]) == {"short", "long"}
