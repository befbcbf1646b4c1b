"""The batch job layer (`quasar run`): inputs, resume, exactly-once results, errors, report.

Fast checks first (no Ray); then runs on one module-scoped local Ray instance (each run starts
its own replica actor and loads the model: seconds on this machine), and one `quasar run`
subprocess killed with SIGKILL mid-way. The shipped model is used when it exists, else a small
random model folder (same format, same code path).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from click.testing import CliRunner

from quasar_dist.batch.ids import derive_id, id_hashes
from quasar_dist.batch.inputs import inspect_inputs
from quasar_dist.batch.ledger import Ledger
from quasar_dist.batch.prepare import prepare_tasks
from quasar_dist.batch.resolve import resolve_run_config
from quasar_dist.batch.results_store import ResultWriter, clean_temp_files, read_done_hashes
from quasar_dist.batch.schema import OUTPUT_SCHEMA, output_row, output_table
from quasar_dist.batch.task_plan import plan_tasks, scan_task_ids
from quasar_dist.cli import main
from quasar_dist.data.tasks import make_tasks, write_tasks
from quasar_dist.model.folder import SHIPPED
from quasar_dist.report.build import report_from_dir
from quasar_dist.report.run_log import append_event
from quasar_dist.util.typed_config import ConfigError
from process_groups import sigkill_driver_when

REPO = Path(__file__).resolve().parent.parent
QUASAR = str(REPO / ".venv" / "bin" / "quasar") if (REPO / ".venv" / "bin" / "quasar").exists() else "quasar"
HAS_TINY = (SHIPPED["tiny"] / "config.json").is_file()
REPORT_KEYS = {
    "tasks", "completed", "errors", "wall_s", "tasks_per_s", "generated_tokens_per_s", "prompt_tokens_per_s",
    "accuracy", "mean_steps", "mean_generated_tokens", "attended_kv_per_task", "flops_per_task", "latency_s",
    "temperature_cache", "kv_evicted_fraction", "mode", "model", "tp", "replicas",
}
PLOTS = {"throughput.png", "generated_tokens.png", "steps.png", "step_heat.png"}
# Short generations: these tests check the job layer, not the model.
GSOT = {"max_steps": 4, "max_new_tokens": 32, "max_batch_size": 4}


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_yaml(tmp_path_factory, model) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    path.write_text(yaml.safe_dump({"model": model, "batch_size": 4, "flush_rows": 4, "gsot": GSOT}))
    return path


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=4, include_dashboard=False)  # over-subscribed on 2 cores: fine for tests
    yield
    ray.shutdown()


def quasar_run(*args: str) -> tuple[int, str]:
    """`quasar run ARGS` in this process (joins the module's Ray instance when there is one)."""
    result = CliRunner().invoke(main, ["run", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def read_results(out: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted((out / "results").glob("part-*.parquet"))])


def tasks_file(path: Path, n: int, seed: int = 0) -> Path:
    return write_tasks(make_tasks("mixed", n, seed), path)


# -- no Ray ------------------------------------------------------------------------------------
def test_run_config_flags_override_yaml_and_paths_are_checked(tmp_path):
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text("batch_size: 8\ngsot: {max_steps: 3}\n")
    cfg = resolve_run_config(str(cfg_path), {"batch_size": 2, "mode": "cot"})
    assert (cfg.batch_size, cfg.mode, cfg.gsot) == (2, "cot", {"max_steps": 3})
    for bad, words in [("output: ../../etc\n", "'..'"), ("gsot: {max_stepz: 3}\n", "gsot.max_stepz"),
                       ("gsot: {max_steps: 0}\n", "max_steps"), ("gsot: {mode: cot}\n", "top level"),
                       ("batch_size: two\n", "batch_size")]:
        cfg_path.write_text(bad)
        with pytest.raises(ConfigError, match=words):
            resolve_run_config(str(cfg_path))


@pytest.mark.parametrize("case", ["missing", "not_parquet", "no_prompt_column", "duplicate_ids", "empty_folder"])
def test_bad_input_stops_with_one_line_before_any_model_loads(tmp_path, case):
    inputs = {
        "missing": (tmp_path / "nope.parquet", "no such file"),
        "not_parquet": (tmp_path / "tasks.parquet", "not a readable Parquet file"),
        "no_prompt_column": (tmp_path / "q.parquet", "no prompt column 'prompt'"),
        "duplicate_ids": (tmp_path / "dup.parquet", "duplicate task ids: 'a', 'b'"),
        "empty_folder": (tmp_path / "empty", "holds no .parquet files"),
    }
    path, expected = inputs[case]
    if case == "not_parquet":
        path.write_text("id,prompt\n1,hello\n")
    elif case == "no_prompt_column":
        pq.write_table(pa.table({"id": ["1"], "question": ["hi"]}), path)
    elif case == "duplicate_ids":
        pq.write_table(pa.table({"id": ["a", "b", "a", "c", "b"], "prompt": list("vwxyz")}), path)
    elif case == "empty_folder":
        path.mkdir()
    # a model that cannot load: the input must be refused before the model is even looked at
    code, output = quasar_run("--input", str(path), "--model", str(tmp_path / "no-model"),
                              "--output", str(tmp_path / "out"))
    assert code == 1
    assert output.strip().count("\n") == 0 and output.startswith("quasar: error: ")
    assert expected in output
    assert not (tmp_path / "out").exists()


def test_bad_input_exit_code_and_stderr_of_the_real_command(tmp_path):
    proc = subprocess.run([QUASAR, "run", "--input", str(tmp_path / "missing.parquet")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"quasar: error: {tmp_path / 'missing.parquet'}: no such file or folder"]


def test_ids_ints_become_strings_missing_ids_come_from_prompts_and_the_plan_filters():
    batch = pa.table({"id": [3, 1, 2], "prompt": ["a", "b", None], "answer": [1, 2, 3]})
    todo = np.sort(id_hashes(["1", "2"]))
    out = prepare_tasks(batch, prompt_col="prompt", id_col="id", answer_col="answer", kind_col=None, todo=todo)
    assert out.column("id").to_pylist() == ["1", "2"] and out.column("reference").to_pylist() == ["2", "3"]
    no_ids = pa.table({"prompt": ["a", "b", None]})
    todo = np.sort(id_hashes([derive_id("a"), derive_id(None)]))
    out = prepare_tasks(no_ids, prompt_col="prompt", id_col=None, answer_col=None, kind_col=None, todo=todo)
    assert out.column("id").to_pylist() == [derive_id("a"), derive_id(None)]
    assert len({derive_id("a"), derive_id("b"), derive_id(""), derive_id(None)}) == 4


def test_plan_resume_and_ledger_write_each_planned_id_once(tmp_path):
    path = tasks_file(tmp_path / "t.parquet", 10)
    spec = inspect_inputs(str(path), prompt_col="prompt", id_col="id", answer_col="answer", kind_col="kind")
    ids = pq.read_table(path).column("id").to_pylist()
    plan = plan_tasks(scan_task_ids(spec, 8), np.sort(id_hashes(ids[:3])))
    assert (plan.num_tasks, plan.num_skipped, len(plan.todo)) == (8, 3, 5)
    ledger = Ledger(plan.todo)
    rows = pa.table({"id": [ids[3], ids[3], ids[0], ids[9], ids[4]]})  # dup, done, beyond limit, new
    assert ledger.admit(rows).column("id").to_pylist() == [ids[3], ids[4]]
    assert ledger.admit(pa.table({"id": [ids[4]]})).num_rows == 0
    assert (ledger.num_done, ledger.num_dropped, ledger.num_missing) == (2, 4, 3)


def test_results_are_committed_atomically_and_temps_of_a_killed_run_are_cleaned(tmp_path):
    writer = ResultWriter(tmp_path, "r1", flush_rows=2, flush_interval_s=3600)
    row = output_row({"id": "a", "prompt": "p", "reference": "1"}, {"answer": "1", "generated_tokens": 3},
                     mode="gsot", model="m", run_id="r1", finished_at=time.time())
    writer.add(output_table([row]))
    assert not list((tmp_path / "results").iterdir())  # below flush_rows: nothing on disk yet
    writer.add(output_table([{**row, "id": "b"}]))
    (tmp_path / "results" / ".part-r0-00000.parquet.tmp").write_bytes(b"PAR1 torn")
    assert clean_temp_files(tmp_path) == 1
    assert [f.name for f in (tmp_path / "results").iterdir()] == ["part-r1-00000.parquet"]
    assert len(read_done_hashes(tmp_path)) == 2


def test_report_counts_the_layers_prefill_dropping_skipped_also_in_parts_written_before(tmp_path):
    """report.json's FLOPs are engine/flops.py's of the rows, dropped (token, layer) pairs
    included; a part written before that column existed reads as none dropped."""
    from quasar_dist.engine.flops import flops_for
    from quasar_dist.model.folder import read_config

    folder = REPO / "models" / "tiny_hops_fixed"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": str(folder), "mode": "gsot", "tp": 1, "replicas": 1}))
    append_event(tmp_path, "r1", "start", skipped=0)
    rows = [output_row({"id": str(i), "prompt": "p", "reference": "1"},
                       {"answer": "1", "prompt_tokens": 200, "generated_tokens": 20, "attended_kv": 9000,
                        "dropped_token_layers": 300 * i}, mode="gsot", model="m", run_id="r1", finished_at=time.time())
            for i in range(3)]
    (tmp_path / "results").mkdir()
    pq.write_table(output_table(rows[:2]), tmp_path / "results" / "part-r1-00000.parquet")
    pq.write_table(output_table(rows[2:]).drop_columns(["dropped_token_layers"]), tmp_path / "results" / "part-r1-00001.parquet")
    append_event(tmp_path, "r1", "end", wall_s=1.0)
    config = read_config(folder)
    expected = np.mean([flops_for(config, 220, 9000, d) for d in (0, 300, 0)])
    assert report_from_dir(tmp_path, plots=False)["flops_per_task"] == pytest.approx(expected, rel=1e-12)


def test_checkpoint_gsot_defaults_fill_what_a_run_leaves_unset(tmp_path):
    import shutil

    from quasar_dist.batch.model_check import check_model, model_gsot

    config = check_model(str(REPO / "models" / "tiny_hops_fixed"), 1)
    assert config.gsot_defaults["kv_budget_layer"] == 1 and "kv_keep_above" in config.gsot_defaults
    assert model_gsot(config, "gsot", {"max_steps": 3}) == {**config.gsot_defaults, "max_steps": 3}
    assert model_gsot(config, "gsot", {"kv_keep_above": None}) == {"backtrack_below": 0.0, "kv_keep_above": None}
    own_budget = model_gsot(config, "gsot", {"kv_budget": 0.5})  # the run's rule replaces the checkpoint's whole rule
    assert own_budget == {"backtrack_below": 0.0, "kv_budget": 0.5}
    assert model_gsot(config, "cot", {"max_steps": 3}) == {"max_steps": 3}
    with pytest.raises(ConfigError, match="kv_budget_layer needs kv_budget"):  # a layer alone is no rule
        check_model(str(REPO / "models" / "tiny_hops_fixed"), 1, gsot={"kv_budget_layer": 2}, mode="gsot")
    bad = shutil.copytree(REPO / "models" / "tiny_hops_fixed", tmp_path / "bad")
    data = json.loads((bad / "config.json").read_text())
    data["quasar"]["gsot_defaults"] = {"max_stepz": 3}
    (bad / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="quasar.gsot_defaults.max_stepz"):
        check_model(str(bad), 1)


def test_bench_compares_gsot_as_quasar_run_runs_it():
    """`quasar bench`'s gsot_vs_cot uses the checkpoint's calibrated gsot_defaults, as a run does."""
    from quasar_dist.bench.main import shipped_gsot
    from quasar_dist.model.folder import read_config

    config = read_config(REPO / "models" / "tiny_hops_fixed")
    gsot = shipped_gsot(config, 7)
    assert gsot.mode == "gsot" and gsot.max_batch_size == 7 and gsot.max_new_tokens == 128
    assert all(getattr(gsot, k) == v for k, v in config.gsot_defaults.items())


def test_report_from_results_alone_has_every_key_table_and_plot(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": "m", "mode": "gsot", "tp": 1, "replicas": 2}))
    start = time.time()
    append_event(tmp_path, "r1", "start", skipped=0)
    writer = ResultWriter(tmp_path, "r1", flush_rows=100, flush_interval_s=3600)
    for i in range(6):
        engine = {"answer": str(i % 2), "steps": ["1 + 1 = 2", f"#### {i % 2}"], "num_steps": 2, "generated_tokens": 9,
                  "prompt_tokens": 12, "attended_kv": 300, "step_temperature": [0.9, 1.1], "stop_reason": "answer",
                  "latency_s": 0.1 * i, "temperature_cache_hits": 5, "temperature_cache_misses": 1, "kv_evicted": 2,
                  "kv_total": 20, "error": "prompt is empty" if i == 5 else None}
        writer.add(output_table([output_row({"id": str(i), "prompt": "p", "reference": "0", "kind": "arith" if i % 3 else "logic"},
                                            engine, mode="gsot", model="m", run_id="r1", finished_at=start + i)]))
    writer.flush()
    append_event(tmp_path, "r1", "end", wall_s=10.0, computed=6)
    report = report_from_dir(tmp_path)
    assert REPORT_KEYS <= set(report) and report == json.loads((tmp_path / "report.json").read_text())
    assert (report["tasks"], report["completed"], report["errors"], report["replicas"]) == (6, 5, 1, 2)
    assert report["accuracy"] == pytest.approx(3 / 6) and report["tasks_per_s"] == pytest.approx(0.6)
    assert report["temperature_cache"] == {"hits": 30, "misses": 6, "hit_rate": pytest.approx(30 / 36)}
    assert report["kv_evicted_fraction"] == pytest.approx(0.1) and set(report["latency_s"]) == {"p50", "p95"}
    assert PLOTS | {"accuracy_by_kind.png"} == {p.name for p in (tmp_path / "plots").iterdir()}
    assert "| accuracy | 50.0% |" in (tmp_path / "report.md").read_text()


# -- on Ray ------------------------------------------------------------------------------------
def test_run_with_no_options_writes_results_report_and_plots(ray_local, tmp_path, monkeypatch, model, run_yaml):
    monkeypatch.chdir(tmp_path)
    args = ["--limit", "8"] if HAS_TINY else ["--limit", "8", "--config", str(run_yaml)]
    code, output = quasar_run(*args)
    assert code == 0, output
    out = tmp_path / "outputs" / "run"
    results = read_results(out)
    assert results.schema == OUTPUT_SCHEMA  # contract columns and types, then the extras
    assert results.num_rows == 8 and len(set(results.column("id").to_pylist())) == 8
    assert set(results.column("stop_reason").to_pylist()) <= {"answer", "converged", "max_steps", "max_tokens", "error"}
    assert results.column("correct").null_count == 0  # the sample tasks have references
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report) and report["tasks"] == 8 and report["model"] == model
    assert 0 < report["first_result_s"] <= report["wall_s"]  # start-up + the one batch, from runs.jsonl
    assert PLOTS <= {p.name for p in (out / "plots").iterdir()}
    assert (out / "report.md").read_text().startswith("# quasar run report")
    assert yaml.safe_load((out / "config.yaml").read_text())["gsot"]["max_steps"] >= 1  # resolved, defaults included


def test_a_calibrated_checkpoint_runs_with_its_defaults_and_reports_the_saving(ray_local, tmp_path):
    """`quasar run --model models/tiny_hops_fixed`: GSoT starts from the checkpoint's calibrated
    gsot_defaults (prefill dropping), config.yaml records them, the report's FLOPs fall below CoT's."""
    inputs = write_tasks(make_tasks("logic", 4, 3, "test", distractors=20), tmp_path / "long.parquet")
    model = str(REPO / "models" / "tiny_hops_fixed")
    reports = {}
    for mode in ("gsot", "cot"):
        out = tmp_path / mode
        code, output = quasar_run("--input", str(inputs), "--output", str(out), "--model", model, "--mode", mode)
        assert code == 0, output
        gsot = yaml.safe_load((out / "config.yaml").read_text())["gsot"]
        assert (gsot["kv_keep_above"], gsot["kv_budget_layer"]) == ((1.0, 1) if mode == "gsot" else (None, None))
        dropped = read_results(out).column("dropped_token_layers").to_pylist()
        assert all(d > 0 for d in dropped) if mode == "gsot" else not any(dropped)
        reports[mode] = json.loads((out / "report.json").read_text())
    assert reports["gsot"]["flops_per_task"] < 0.8 * reports["cot"]["flops_per_task"]


def test_null_empty_and_overlong_prompts_become_error_rows_in_fastparquet_input(ray_local, tmp_path, run_yaml):
    good = make_tasks("arith", 2, 1)
    prompts = [good[0]["prompt"], None, "", "   ", "3 + 4 = 7 . " * 400, good[1]["prompt"]]
    frame = pd.DataFrame({"prompt": prompts, "answer": [int(good[0]["answer"]), 1, 2, 3, 4, int(good[1]["answer"])]})
    frame.to_parquet(tmp_path / "tasks.parquet", engine="fastparquet")  # and no id column: ids from prompt hashes
    code, output = quasar_run("--config", str(run_yaml), "--input", str(tmp_path / "tasks.parquet"),
                              "--output", str(tmp_path / "out"))
    assert code == 0, output
    rows = {r["prompt"]: r for r in read_results(tmp_path / "out").to_pylist()}
    assert len(rows) == 6 and all(r["id"].startswith("p-") for r in rows.values())
    for bad, cause in [(None, "null"), ("", "empty"), ("   ", "empty"), (prompts[4], "tokens")]:
        assert rows[bad]["stop_reason"] == "error" and cause in rows[bad]["error"], rows[bad]
        assert rows[bad]["correct"] is False  # has a reference, no answer
    for ok in (prompts[0], prompts[5]):
        assert rows[ok]["error"] is None and rows[ok]["reference"] == str(frame.answer[prompts.index(ok)])
    assert json.loads((tmp_path / "out" / "report.json").read_text())["errors"] == 4


def test_run_killed_mid_way_then_resumed_writes_every_id_exactly_once(ray_local, tmp_path, run_yaml):
    num_tasks = 48  # batches of 2 committed one by one: the kill lands after the first few
    tasks = tasks_file(tmp_path / "tasks.parquet", num_tasks)
    out = tmp_path / "out"
    args = ["--config", str(run_yaml), "--input", str(tasks), "--output", str(out), "--batch-size", "2"]
    sigkill_driver_when([QUASAR, "run", *args], lambda: any((out / "results").glob("part-*.parquet")),
                        tmp_path / "killed.log")
    killed = read_results(out).num_rows
    assert 0 < killed < num_tasks, (tmp_path / "killed.log").read_text()
    (out / "results" / ".part-torn-00000.parquet.tmp").write_bytes(b"PAR1")  # as if killed mid-write

    code, output = quasar_run(*args)
    assert code == 0, output
    ids = read_results(out).column("id").to_pylist()
    assert sorted(ids) == sorted(pq.read_table(tasks).column("id").to_pylist())  # each id exactly once
    assert not list((out / "results").glob(".*.tmp"))
    report = json.loads((out / "report.json").read_text())
    assert (report["tasks"], report["skipped_resumed"], report["computed_last_run"]) == (num_tasks, killed, num_tasks - killed)

    files = sorted(p.name for p in (out / "results").iterdir())
    code, output = quasar_run(*args)  # complete: recomputes nothing
    assert code == 0, output
    report = json.loads((out / "report.json").read_text())
    assert (report["skipped_resumed"], report["computed_last_run"], report["tasks"]) == (num_tasks, 0, num_tasks)
    assert sorted(p.name for p in (out / "results").iterdir()) == files


def test_run_attaches_a_ttm_adapter_and_resume_checks_it(ray_local, tmp_path, run_yaml, model):
    from quasar_dist.model.adapter import save_adapter
    from quasar_dist.train.adapter import adapter_model
    from quasar_dist.train.config import TrainConfig
    from quasar_dist.util.typed_config import from_dict

    recipe = from_dict(TrainConfig, {"adapter_of": model, "model": {"ttm_dim": 8}}, source="test")
    adapter = save_adapter(adapter_model(recipe)[0], tmp_path / "adapter", base=model)
    tasks = tasks_file(tmp_path / "tasks.parquet", 6)
    args = ["--config", str(run_yaml), "--input", str(tasks), "--output", str(tmp_path / "out")]
    code, output = quasar_run(*args, "--ttm", str(adapter))
    assert code == 0, output
    assert read_results(tmp_path / "out").num_rows == 6
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["ttm"] == str(adapter)
    code, output = quasar_run(*args)  # the same folder without the adapter: not the same run
    assert code != 0 and "made with ttm=" in output
    code, output = quasar_run(*args[:-2], "--output", str(tmp_path / "bad"), "--ttm", str(tmp_path))
    assert code != 0 and "not a TTM adapter folder" in output and not (tmp_path / "bad" / "results").exists()


def test_driver_stage_and_read_tasks_do_not_import_torch():
    """Only the rank actors compute. The driver (the job, the CLI, the report and its FLOPs), the
    replicas' stage actors (which build the gangs and check the model folder) and Ray Data's read
    tasks (prepare_tasks) must not import torch: it costs ~2 s of CPU in every such process at
    start-up."""
    code = (
        "import sys\n"
        "import quasar_dist.cli, quasar_dist.batch.job, quasar_dist.batch.stage, quasar_dist.batch.prepare\n"
        "from quasar_dist.batch.model_check import check_model\n"
        "from quasar_dist.parallel import ParallelConfig, ReplicaGang\n"
        "check_model('tiny', 1, gsot={'kv_budget': 0.5})\n"
        "ParallelConfig().dtype_name(use_gpu=False)\n"
        "from quasar_dist.report.build import model_shape\n"
        "from quasar_dist.engine.flops import flops_for\n"
        "flops_for(model_shape('tiny'), 10, 10, 0)\n"
        "print(sorted(m for m in ('torch', 'deepspeed', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_guidance_overhead_compares_equal_work():
    """`quasar bench`'s guidance_overhead: every task generates exactly its guidance-off length
    on both sides (the answer line and EOS do not stop it), and with guidance on its newlines are
    committed steps; the free-running loops are reported beside it."""
    from quasar_dist.bench.overhead import compare_guidance, fixed_length_run, lines_without_stops
    from quasar_dist.data.tasks import make_tasks
    from quasar_dist.model import load_with_tokenizer

    model, tokenizer = load_with_tokenizer("tiny")
    tasks = [t for kind in ("arith", "logic") for t in make_tasks(kind, 3, 9001, "test")]
    result = compare_guidance(model, tokenizer, tasks, batch_size=8, max_new_tokens=64, repeats=1)
    assert result["guidance_on"] == "bias" and result["tokens_per_s_on"] > 0 and result["tokens_per_s_off"] > 0
    assert result["overhead"] == pytest.approx(1 - result["tokens_per_s_on"] / result["tokens_per_s_off"])
    free = result["free_running"]
    assert 0 <= free["accuracy_on"] <= 1 and free["generated_tokens_off"] > 0
    prompts = [tokenizer.encode_prompt(t["prompt"]) for t in tasks]
    rule = lines_without_stops(tokenizer)
    lengths = [40] * len(prompts)
    _, generated, steps = fixed_length_run(model, rule, prompts, lengths, "bias", 8)
    assert generated == sum(lengths) and steps > len(prompts)  # newlines still end (committed) steps
    _, generated, steps = fixed_length_run(model, rule, prompts, lengths, "off", 8)
    assert generated == sum(lengths) and steps == 0  # off commits nothing


def test_throughput_rows_generate_the_forced_lengths_and_match_hf():
    """`quasar bench`'s throughput section: every request generates exactly its forced length in
    our engine, greedy outputs equal Hugging Face generate's (run_hf), and the keys are there."""
    from quasar_dist.bench.engine_vs_hf import load_hf
    from quasar_dist.bench.throughput import Workload, compare_throughput, run_fixed_lengths
    from quasar_dist.model import load_model, resolve_model_path

    model = load_model("tiny").eval()
    workload = Workload("tiny", 6, (8, 20), (3, 9), seed=4)
    row = compare_throughput(model, load_hf(resolve_model_path("tiny")), workload, num_slots=4, hf_batch_size=3,
                             peak_flops=1e9, static_cache=False)
    assert row["identical_outputs"] == 1.0 and row["ratio"] > 0 and row["roofline_fraction"] > 0
    requests = workload.requests(model.config.vocab_size)
    _, seqs = run_fixed_lengths(model, requests, 4, shortest_first=True)
    assert [len(s.output_ids) for s in seqs] == [m for _, m in requests]
