"""TTM adapters (issue #14): temperatures for any checkpoint without retraining it. An untrained
adapter is the identity, a trained one changes only the TTM, and a run attaches it by flag."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from quasar_dist import load_model
from quasar_dist.model import ModelLoadError
from quasar_dist.model.adapter import save_adapter
from quasar_dist.reasoning import Reasoner
from quasar_dist.train.adapter import adapter_model
from quasar_dist.train.config import TrainConfig
from quasar_dist.train.trainer import train
from quasar_dist.util.typed_config import from_dict

from hf_reference import make_hf_checkpoint

WORDS = [" ".join(f"w{(7 * i + 3 * j) % 90 + 4}" for j in range(12 + i % 9)) for i in range(48)]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen2")
    make_hf_checkpoint("qwen2", folder)
    prompts = tmp_path_factory.mktemp("prompts") / "prompts.parquet"
    pq.write_table(pa.table({"text": WORDS}), prompts)
    return folder, prompts


def recipe(base, out, prompts=None, **extra) -> TrainConfig:
    data = dict(output_dir=str(out), adapter_of=str(base), prompts=None if prompts is None else str(prompts),
                prompt_col="text", continuation_tokens=12, kinds=["arith"], train_tasks_per_kind=40,
                val_tasks_per_kind=0, batch_size=8, max_steps=6, eval_every=1000, checkpoint_every=1000,
                warmup_steps=1, keep_target=0.5, keep_ramp_steps=4, ttm_lr=0.05, threads=1,
                model={"ttm_dim": 8, "ttm_context": "last"})
    return from_dict(TrainConfig, {**data, **extra}, source="test")


def test_untrained_adapter_is_the_identity(qwen, tmp_path):
    folder, _ = qwen
    model, _ = adapter_model(recipe(folder, tmp_path))
    save_adapter(model, tmp_path / "adapter", base=str(folder))
    ids = torch.randint(4, 97, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = load_model(folder, guidance="off")(ids)
        for guidance in ("bias", "scale"):
            adapted = load_model(folder, guidance=guidance, ttm=tmp_path / "adapter")
            assert adapted.config.ttm_dim == 8 and adapted.config.ttm_context == "last"
            assert torch.equal(adapted(ids), base), guidance  # exactly, not within a tolerance


def test_trained_adapter_changes_only_the_ttm_and_runs_gsot(qwen, tmp_path):
    folder, prompts = qwen
    adapter = train(recipe(folder, tmp_path / "run", prompts))
    assert (adapter / "ttm.safetensors").is_file()
    tensors = load_file(adapter / "ttm.safetensors")
    assert tensors and all(".ttm." in name for name in tensors)  # a small file: the TTM alone
    meta = json.loads((adapter / "ttm_config.json").read_text())
    assert meta["base"] == str(folder) and meta["ttm_dim"] == 8
    assert any(name.endswith(".w") and tensors[name].abs().sum() > 0 for name in tensors)  # it learned
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["trained_params"] == sum(t.numel() for t in tensors.values())
    base, adapted = load_model(folder), load_model(folder, ttm=adapter)
    for (name, p), (name2, q) in zip(base.named_parameters(), adapted.named_parameters()):
        assert name == name2
        if ".ttm." not in name:
            assert torch.equal(p, q), name
    rows = Reasoner(folder, mode="gsot", ttm=str(adapter), max_new_tokens=8).solve(WORDS[:3])
    assert len(rows) == 3 and all(r["error"] is None and r["generated_tokens"] > 0 for r in rows)


def test_adapter_errors_are_one_line(qwen, tmp_path):
    folder, _ = qwen
    with pytest.raises(ModelLoadError, match="not a TTM adapter folder"):
        load_model(folder, ttm=tmp_path)
    model, _ = adapter_model(recipe(folder, tmp_path))
    save_adapter(model, tmp_path / "a", base="x")
    meta = json.loads((tmp_path / "a" / "ttm_config.json").read_text())
    meta["hidden_size"] = 32
    (tmp_path / "a" / "ttm_config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="adapter is for hidden_size 32, the base has 64"):
        load_model(folder, ttm=tmp_path / "a")


def test_relevance_report_reads_an_attached_adapter(tmp_path):
    """`relevance_report --ttm`: the temperatures scored are the adapter's (an untrained adapter is
    the identity: every temperature 1, so every AUROC is exactly 0.5), the base's accuracy stays."""
    from quasar_dist.model import resolve_model_path
    from quasar_dist.train.relevance_report import relevance_report

    base = resolve_model_path("tiny")
    model, _ = adapter_model(recipe(base, tmp_path, model={"ttm_dim": 8, "ttm_context": "last"}))
    save_adapter(model, tmp_path / "adapter", base=str(base))
    report = relevance_report("tiny", n=2, distractors=(3,), kv_budgets=(), ttm=str(tmp_path / "adapter"))
    assert report["ttm_adapter"] == str(tmp_path / "adapter")
    assert [r["auroc_layer_mean"] for r in report["rows"]] == [0.5, 0.5]
    plain = relevance_report("tiny", n=2, distractors=(3,), kv_budgets=())
    assert [r["cot_off"] for r in report["rows"]] == [r["cot_off"] for r in plain["rows"]]
    assert all(r["auroc_layer_mean"] > 0.5 for r in plain["rows"])
