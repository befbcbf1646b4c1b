"""lm-evaluation-harness's `quasar` model with the real lm-eval, offline (no hub): scoring by the
model's forward, and `quasar lm-eval` (lm-eval's own CLI) giving the same accuracy as `quasar
run` on the same 100 tasks."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from quasar_dist.cli import main
from quasar_dist.data.tasks import make_tasks, write_tasks
from quasar_dist.model.folder import SHIPPED

pytest.importorskip("lm_eval")
pytestmark = pytest.mark.skipif(not (SHIPPED["tiny"] / "config.json").is_file(), reason="needs the shipped model")

REPO = Path(__file__).resolve().parent.parent
QUASAR = str(REPO / ".venv" / "bin" / "quasar") if (REPO / ".venv" / "bin" / "quasar").exists() else "quasar"
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_registered_model_scores_with_the_models_forward():
    os.environ.update(OFFLINE)
    from lm_eval.api.instance import Instance
    from lm_eval.api.registry import get_model

    import quasar_dist.integrations.lm_eval  # noqa: F401

    lm = get_model("quasar").create_from_arg_string("model=tiny,mode=cot,max_steps=6")
    task = make_tasks("arith", 1, 2)[0]
    context, continuation = task["prompt"] + "\n", task["solution"]
    (logprob, greedy), (wrong, _) = lm.loglikelihood([
        Instance("loglikelihood", {}, (context, continuation), 0),
        Instance("loglikelihood", {}, (context, continuation.replace(task["answer"], str(int(task["answer"]) + 7))), 1),
    ])
    model, tok = lm._scoring_model()
    ids = [tok.bos_token_id] + tok.encode(context) + tok.encode(continuation)
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]]))
    n = len(tok.encode(continuation))
    expected = F.log_softmax(logits.float(), -1)[0, -n:].gather(1, torch.tensor(ids[-n:])[:, None]).sum()
    assert logprob == pytest.approx(float(expected), rel=1e-5) and logprob < 0
    assert wrong < logprob  # the trained model prefers its own solution's answer
    assert isinstance(greedy, bool)
    [text] = lm.generate_until([Instance("generate_until", {}, (task["prompt"], {"until": ["\n\n"]}), 0)])
    assert "####" in text


def test_lm_eval_accuracy_equals_quasar_run_on_the_same_100_tasks(tmp_path):
    tasks = write_tasks(make_tasks("mixed", 100, 21), tmp_path / "tasks.parquet")
    env = {**os.environ, **OFFLINE}
    proc = subprocess.run(
        [QUASAR, "lm-eval", "run", "--model", "quasar", "--model_args", "model=tiny,mode=gsot",
         "--tasks", "quasar_reasoning", "--metadata", json.dumps({"data_files": str(tasks)}),
         "--output_path", str(tmp_path / "lm_eval")],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [results_file] = list((tmp_path / "lm_eval").rglob("results_*.json"))
    lm_eval_acc = json.loads(results_file.read_text())["results"]["quasar_reasoning"]["acc,none"]

    ray.init(num_cpus=3, include_dashboard=False)
    try:
        result = CliRunner().invoke(main, ["run", "--input", str(tasks), "--output", str(tmp_path / "run"), "--mode", "gsot"])
    finally:
        ray.shutdown()
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["tasks"] == 100 == pq.read_metadata(tasks).num_rows
    assert lm_eval_acc == pytest.approx(report["accuracy"]), (lm_eval_acc, report["accuracy"])
