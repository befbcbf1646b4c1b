"""Bad input, end to end: what `quasar run` does with each kind of broken or odd input.

Not repeated here (tests/test_batch.py covers them): missing path, empty folder, non-Parquet file,
missing prompt column, duplicate ids, null/empty/whitespace prompts, prompts over the context
length, fastparquet input, `../../etc` as `output` and nested unknown keys in a config.
The observed behaviour of every case is tabled in docs/hardening.md.

Fast checks first (no Ray); then one module-scoped local Ray instance for the two runs that need
replicas (odd prompts from a 100,000-row file with --limit, and a pickle-only model folder).
"""
from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

from quasar_dist.batch.inputs import inspect_inputs
from quasar_dist.batch.task_plan import scan_task_ids
from quasar_dist.cli import main
from quasar_dist.data.tasks import make_tasks
from quasar_dist.model import ModelLoadError, load_model, resolve_model_path

TINY = Path(resolve_model_path("tiny"))
GSOT = {"max_steps": 3, "max_new_tokens": 24, "max_batch_size": 4}


def quasar_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, expected: str) -> None:
    assert code == 1, output
    assert output.startswith("quasar: error: ") and output.strip().count("\n") == 0, output
    assert expected in output, output


# -- no Ray: refused before Ray starts or a model is looked at ------------------------------------
def _write_case(case: str, path: Path) -> None:
    good = pa.table({"id": [str(i) for i in range(3000)], "prompt": ["2 + 3 = ?"] * 3000})
    if case in ("truncated", "corrupt_pages"):
        pq.write_table(good, path, row_group_size=500, compression="none")
        data = bytearray(path.read_bytes())
        if case == "truncated":
            data = data[: len(data) // 2]  # footer gone
        else:
            data[200:20000] = b"\xff" * (20000 - 200)  # footer intact, id pages garbage
        path.write_bytes(bytes(data))
        return
    tables = {
        "prompt_int": pa.table({"id": ["1", "2"], "prompt": [1, 2]}),
        "prompt_binary_non_utf8": pa.table({"id": ["1", "2"], "prompt": pa.array([b"\xff\xfe\x00", b"ok"], pa.binary())}),
        "id_list": pa.table({"id": [[1], [2]], "prompt": ["a", "b"]}),
        "id_binary_non_utf8": pa.table({"id": pa.array([b"\xff\xfe", b"ok"], pa.binary()), "prompt": ["a", "b"]}),
        "answer_list": pa.table({"id": ["1", "2"], "prompt": ["a", "b"], "answer": [[1], [2]]}),
    }
    pq.write_table(tables[case], path)


@pytest.mark.parametrize("case, expected", [
    ("truncated", "not a readable Parquet file"),
    ("corrupt_pages", "corrupt Parquet data in column 'id'"),
    ("prompt_int", "prompt column 'prompt' must hold strings, not int64"),
    ("prompt_binary_non_utf8", "must hold strings, not binary"),
    ("id_list", "column 'id' must hold strings or integers, not list"),
    ("id_binary_non_utf8", "column 'id' must hold strings or integers, not binary"),
    ("answer_list", "column 'answer' must hold strings, numbers or booleans"),
])
def test_unreadable_or_mistyped_input_is_one_line_before_anything_starts(tmp_path, case, expected):
    path = tmp_path / "tasks.parquet"
    _write_case(case, path)
    code, output = quasar_run("--input", str(path), "--model", str(tmp_path / "no-model"),
                              "--output", str(tmp_path / "out"))
    assert_one_line_error(code, output, expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, expected", [
    ("bogus_key: 1\n", "bogus_key"),
    ("tp: two\n", "tp"),
    ("batch_size: [1, 2]\n", "batch_size"),
    ("parallel: {max_restartz: 1}\n", "parallel.max_restartz"),
    ("output: ../../etc\n", "must not contain '..'"),
    ("output: runs/../../../etc\n", "must not contain '..'"),
    ("model: {tmp}/empty-folder\n", "config.json"),
    ("model: {tmp}/no-such-folder\n", "nor a model folder"),
    ("gsot: {kv_budget_layer: 1}\n", "kv_budget_layer needs kv_budget"),
    ("model: {repo}/models/tiny_stage1\ngsot: {kv_budget: 0.5, kv_budget_layer: 1}\n", "ttm_context 'last'"),  # the mean context
    ("gsot: {kv_budget: 0.5, kv_budget_layer: 9}\n", "below the model's 4 layers"),
])
def test_bad_config_is_one_line(tmp_path, text, expected):
    (tmp_path / "empty-folder").mkdir()
    text = text.replace("{tmp}", str(tmp_path)).replace("{repo}", str(Path(__file__).resolve().parents[1]))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    args = ["--config", str(cfg)] + ([] if "output" in text else ["--output", str(tmp_path / "out")])
    code, output = quasar_run(*args)
    assert_one_line_error(code, output, expected)
    assert not (tmp_path / "out").exists()


def _model_copy(tmp_path: Path, how: str) -> Path:
    folder = tmp_path / f"model-{how}"
    shutil.copytree(TINY, folder)
    weights = folder / "model.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    name = "model.layers.0.self_attn.q_proj.weight"
    if how == "missing_tensor":
        del tensors[name]
    elif how == "wrong_shape":
        tensors[name] = tensors[name][:, :-1].contiguous()
    if how == "pickle_only":
        weights.unlink()
        (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not-really-a-pickle")  # never opened
    else:
        save_file(tensors, str(weights))
    return folder


@pytest.mark.parametrize("how, expected", [
    ("missing_tensor", "missing tensor 'model.layers.0.self_attn.q_proj.weight'"),
    ("wrong_shape", "has shape"),
    ("pickle_only", "only pickle weights (pytorch_model.bin); refused, safetensors only"),
])
def test_broken_model_folder_is_a_one_line_model_load_error(tmp_path, how, expected):
    with pytest.raises(ModelLoadError) as info:
        load_model(_model_copy(tmp_path, how))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_100k_row_file_is_checked_as_a_stream_without_loading_it(tmp_path):
    n = 100_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": [f"t{i}" for i in range(n)], "prompt": [f"{i % 97} + 1 = ?" for i in range(n)]}),
                   path, row_group_size=10_000)
    tracemalloc.start()
    start = time.perf_counter()
    spec = inspect_inputs(str(path), prompt_col="prompt", id_col="id", answer_col="answer", kind_col="kind")
    hashes = scan_task_ids(spec, None)
    limited = scan_task_ids(spec, 10)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert spec.num_rows == n and len(hashes) == n and len(limited) == 10
    # what stays: 8 bytes per id (0.8 MB); one 65,536-row id batch at a time is read (~1 MB of
    # ~7-byte strings), never the prompt column or the whole file
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert elapsed < 30


# -- on Ray ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=4, include_dashboard=False)
    yield
    ray.shutdown()


ODD_PROMPTS = {
    "cjk": "小明有3个苹果，又买了4个。他现在有几个苹果？",
    "emoji": "🍎🍎🍎 + 🍎🍎 = ? 😀👍🏽👨‍👩‍👧",
    "rtl": "كم يساوي ٣ + ٤؟ ‏שלום עולם‎ 3 + 4",
    "mb": "3 + 4 = 7 . " * (2**20 // 12),  # ~1 MB
}


def test_odd_prompts_from_a_100k_row_file_with_limit(ray_local, tmp_path):
    """Unicode (CJK, emoji, RTL), a 1 MB prompt and path-like ids, as the first rows of a
    100,000-row file run with --limit: every limited id once, the rest never read into tasks."""
    n = 100_000
    good = make_tasks("arith", 2, 7)
    first = [(k, p) for k, p in ODD_PROMPTS.items()] + [("../../escape", good[0]["prompt"]), ("/abs/x", good[1]["prompt"])]
    ids = [i for i, _ in first] + [f"t{i}" for i in range(len(first), n)]
    prompts = [p for _, p in first] + [f"{i % 9} + 1 = ?" for i in range(len(first), n)]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": ids, "prompt": prompts}), path, row_group_size=5_000)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"batch_size": 3, "flush_rows": 3, "gsot": GSOT, "plots": False}))
    out = tmp_path / "out"
    start = time.perf_counter()
    code, output = quasar_run("--config", str(cfg), "--input", str(path), "--output", str(out), "--limit", str(len(first)))
    elapsed = time.perf_counter() - start
    assert code == 0, output
    rows = {r["id"]: r for f in sorted((out / "results").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()}
    assert sorted(rows) == sorted(i for i, _ in first)
    assert "tokens" in rows["mb"]["error"] and rows["mb"]["stop_reason"] == "error"
    for key in ("cjk", "emoji", "rtl"):
        assert rows[key]["prompt"] == ODD_PROMPTS[key]  # round-trips unchanged
        assert rows[key]["stop_reason"] in {"answer", "converged", "max_steps", "max_tokens", "error"}
    # ids that look like paths are data, never file names
    assert sorted(p.name for p in out.iterdir()) == sorted(["results", "report.json", "report.md", "config.yaml", "runs.jsonl", ".lock"])
    assert not (tmp_path / "escape").exists() and not Path("/abs").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"] == len(first)
    print(f"\n100k-row file, --limit {len(first)}: {elapsed:.1f}s; errors {report['errors']}: "
          + "; ".join(f"{k}={rows[k]['stop_reason']}/{(rows[k]['error'] or '')[:60]}" for k in ODD_PROMPTS))


def test_pickle_only_model_folder_is_refused_by_the_run(ray_local, tmp_path):
    tasks = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["1"], "prompt": ["1 + 1 = ?"]}), tasks)
    code, output = quasar_run("--input", str(tasks), "--model", str(_model_copy(tmp_path, "pickle_only")),
                              "--output", str(tmp_path / "out"))
    assert code == 1, output
    # Ray prints its own error report around it (docs/batch.md); the CLI's line is one line
    ours = [line for line in output.splitlines() if line.startswith("quasar: error: ")]
    assert len(ours) == 1 and "refused, safetensors only" in ours[0], output
