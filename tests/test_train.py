"""Training: a short DeepSpeed run on CPU lowers the loss, saves a loadable model and resumes."""
import json
import subprocess
import sys

import pytest
import torch

from quasar_dist import load_model
from quasar_dist.train.batches import collate, segment_ids_for
from quasar_dist.train.config import TrainConfig
from quasar_dist.train.trainer import train
from quasar_dist.util.typed_config import ConfigError, load_config


def test_segment_ids_follow_solution_lines():
    nl = 9
    ids = torch.tensor([[1, 5, 6, nl, 7, 7, nl, 8, nl, 2, 0]])
    seg = segment_ids_for(ids, torch.tensor([4]), nl)
    assert seg.tolist() == [[0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3]]


def test_loss_mask_covers_solution_only():
    ids, seg, mask = collate([([1, 5, 9, 7, 9, 2], 3)], newline_id=9)
    # positions 2..4 predict tokens 3..5 (solution + eos); the prompt is never a target
    assert mask.tolist() == [[False, False, True, True, True, False]]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    cfg = load_config(TrainConfig, "configs/train/smoke.yaml", {"output_dir": str(out), "max_steps": 30})
    folder = train(cfg)
    return out, folder


def test_short_training_lowers_loss(short_run):
    out, _ = short_run
    history = json.loads((out / "history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert (out / "training_curve.png").stat().st_size > 1000


def test_saved_model_loads_with_identical_logits(short_run):
    out, folder = short_run
    loaded = load_model(folder)
    assert loaded.has_trained_ttm and loaded.guidance == "bias"
    again = load_model(folder)
    ids = torch.randint(4, 100, (2, 20))
    with torch.no_grad():
        assert torch.equal(loaded(ids), again(ids))


def test_resume_continues_from_checkpoint(short_run, tmp_path):
    out, _ = short_run
    cfg = load_config(TrainConfig, "configs/train/smoke.yaml", {"output_dir": str(out), "max_steps": 32})
    train(cfg)
    history = json.loads((out / "history.json").read_text())
    steps = [h["step"] for h in history if "loss" in h]
    assert steps[-2:] == [31, 32] and steps.count(31) == 1  # resumed at 30, did 2 more steps


def test_continued_training_with_eviction_in_the_loop(model, tmp_path):
    """`init_from` + distractor tasks + eviction in the loop (the stage-2 recipe, a few steps):
    the decoder starts from the given model, the TTM starts as the identity of the new kind."""
    cfg = load_config(TrainConfig, "configs/train/tiny_long.yaml", {
        "output_dir": str(tmp_path / "run"), "init_from": model, "ship_to": None, "train_tasks_per_kind": 40,
        "distractors": [0, 6], "val_tasks_per_kind": 2, "val_distractors": 4, "batch_size": 4, "max_steps": 4,
        "eval_every": 1000, "checkpoint_every": 1000, "warmup_steps": 1, "keep_ramp_steps": 2, "threads": 1,
        "guidance_off_fraction": 0.0})
    folder = train(cfg)
    trained, start = load_model(folder), load_model(model)
    assert trained.config.ttm_context == "last" and trained.config.max_position_embeddings == 1024
    assert trained.config.hidden_size == start.config.hidden_size
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert all(0.0 < h["kept"] <= 1.0 for h in history if "loss" in h and "kept" in h)
    assert sum("kept" in h for h in history) == 4  # every step ran the evicting forward
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "val_auroc_arith_d4" in summary["final"] and "val_acc_logic_d4_bias" in summary["final"]


def test_relevance_supervised_recipe_trains_on_labelled_prompt_tokens(model, tmp_path):
    """The stage-3 recipe (configs/train/tiny_guided.yaml), a few steps: the relevance term on
    every step (its labels come from the distractor tasks' spans), one forward per step until
    evict_from_step, then eviction in the loop under the TTM's own decisions."""
    cfg = load_config(TrainConfig, "configs/train/tiny_guided.yaml", {
        "output_dir": str(tmp_path / "run"), "init_from": model, "train_tasks_per_kind": 40,
        "distractors": [2, 6], "distractor_share": 1.0, "val_tasks_per_kind": 2, "val_distractors": 4,
        "batch_size": 4, "max_steps": 4, "evict_from_step": 2, "guidance_off_fraction": 0.0, "eval_every": 1000,
        "checkpoint_every": 1000, "warmup_steps": 1, "threads": 1})
    train(cfg)
    history = [h for h in json.loads((tmp_path / "run" / "history.json").read_text()) if "loss" in h]
    assert len(history) == 4 and all(0.0 < h["relevance_loss"] < 10.0 for h in history)
    assert ["kept" in h for h in history] == [False, False, True, True]  # evicting from step 2 on


def test_decoder_trained_under_prefill_dropping_keeps_the_ttm(tmp_path):
    """The stage-6 recipe (configs/train/tiny_drop.yaml), a few steps: init_from's TTM is kept
    (keep_ttm), every step trains under the threshold drop after layer 1, and validation also
    reports the accuracy of that GSoT setting."""
    cfg = load_config(TrainConfig, "configs/train/tiny_drop.yaml", {
        "output_dir": str(tmp_path / "run"), "train_tasks_per_kind": 20, "distractors": [10, 20],
        "distractor_share": 1.0, "val_tasks_per_kind": 2, "val_distractors": 10, "batch_size": 2, "max_steps": 3,
        "prefill_drop_share": 1.0, "eval_every": 1000, "checkpoint_every": 1000, "warmup_steps": 1, "threads": 1})
    folder = train(cfg)
    start, trained = load_model("models/tiny_hops_fixed"), load_model(folder)
    assert trained.config.guidance == "off" and trained.config.ttm_hops == start.config.ttm_hops
    history = [h for h in json.loads((tmp_path / "run" / "history.json").read_text()) if "loss" in h]
    assert len(history) == 3 and all(0.0 < h["prefill_kept"] < 1.0 for h in history)  # the threshold drops
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "val_acc_arith_d10_drop" in summary["final"] and "val_acc_logic_drop" in summary["final"]
    for name, p in start.named_parameters():
        if ".ttm." in name:  # kept, then trained a little (not a fresh identity TTM)
            assert torch.allclose(p, dict(trained.named_parameters())[name], atol=0.05), name


def test_bad_recipe_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {hidden_sise: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'model.hidden_sise'"):
        load_config(TrainConfig, bad)
    bad.write_text("batch_size: many\n")
    with pytest.raises(ConfigError, match=r"'batch_size' must be an int"):
        load_config(TrainConfig, bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(TrainConfig, tmp_path / "none.yaml")
    bad.write_text('guidance: "off"\n')  # nothing would train the TTM
    with pytest.raises(ConfigError, match="lambda_relevance"):
        load_config(TrainConfig, bad)


def test_lr_schedules_warm_up_then_decay_or_hold(tmp_path):
    from quasar_dist.train.trainer import lr_factor

    cosine = TrainConfig(warmup_steps=10, max_steps=110, max_minutes=60.0)
    constant = TrainConfig(warmup_steps=10, max_steps=110, max_minutes=60.0, lr_schedule="constant")
    for cfg in (cosine, constant):
        assert lr_factor(0, 0.0, cfg) == pytest.approx(0.1) and lr_factor(9, 0.0, cfg) == 1.0
    assert lr_factor(60, 0.0, cosine) == pytest.approx(0.55) and lr_factor(110, 0.0, cosine) == pytest.approx(0.1)
    assert lr_factor(60, 30.0, cosine) == pytest.approx(0.55)  # by time as by steps
    assert all(lr_factor(step, 59.0, constant) == 1.0 for step in (10, 60, 110, 10_000))
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr_schedule: linear\n")
    with pytest.raises(ConfigError, match="lr_schedule"):
        load_config(TrainConfig, bad)


def test_two_rank_data_parallel_training_on_cpu(tmp_path):
    """`torchrun --nproc_per_node 2 quasar train`: two gloo ranks, DeepSpeed averages gradients,
    rank 0 writes the model (~10 s: two processes import DeepSpeed)."""
    import subprocess
    import sys

    import yaml

    cfg = yaml.safe_load(open("configs/train/smoke.yaml"))
    cfg["output_dir"] = str(tmp_path / "run")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(cfg))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29613"]
    proc = subprocess.run(torchrun + ["-m", "quasar_dist.cli", "train", str(recipe)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == cfg["max_steps"]
    assert load_model(tmp_path / "run" / "model").has_trained_ttm


def test_training_imports_no_ray():
    """Training needs DeepSpeed, not Ray: a GPU box with torch + DeepSpeed alone can train
    (benchmarks/gpu_checks.sh ran that way), and `import quasar_dist.parallel` stays lazy."""
    code = ("import sys, quasar_dist.train.trainer, quasar_dist.train.heldout; "
            "assert 'ray' not in sys.modules, 'ray imported'; "
            "from quasar_dist.parallel import ReplicaPool, RANK_METHODS; assert 'ray' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
