"""Security checks (no Ray): safetensors only, no code execution from data, output confined to
the output folder, and the cluster docs point at token authentication. See docs/hardening.md."""
from __future__ import annotations

import pickle
import re
import shutil
import time
from pathlib import Path

import pytest
import torch

from quasar_dist.batch.resolve import resolve_run_config
from quasar_dist.batch.results_store import ResultWriter, read_done_hashes
from quasar_dist.batch.schema import output_row, output_table
from quasar_dist.model import ModelLoadError, load_model, resolve_model_path
from quasar_dist.util.typed_config import ConfigError

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "quasar_dist"
TINY = Path(resolve_model_path("tiny"))

# pattern -> {file: why it is acceptable}. Anything else found is a failure.
RISKY = {
    r"\btorch\.load\b": {},
    r"\bpickle\b": {
        "model/checkpoint.py": "the refusal itself: names pickle suffixes to reject them",
        "train/checkpointing.py": "docstring: training checkpoints are written *without* pickle",
    },
    r"(?<![\.\w])eval\(": {},  # builtin eval; model.eval() is fine
    r"(?<![\.\w])exec\(": {},
    r"\btrust_remote_code\b": {},
    r"\bfrom_pretrained\(": {
        "bench/engine_vs_hf.py": "the HF reference in `quasar bench`, on a folder the bench itself wrote with "
                                 "save_pretrained (safetensors); never a user-supplied path",
    },
    r"\bcloudpickle\b|\bdill\b|\bmarshal\.loads\b|yaml\.unsafe_load|yaml\.full_load": {},
    r"yaml\.load\(": {
        "util/typed_config.py": "Loader=_Yaml12Loader, a yaml.SafeLoader subclass (checked below)",
    },
}


def test_no_unsafe_deserialisation_or_code_execution_in_the_package():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        text = path.read_text(encoding="utf-8")
        for pattern, allowed in RISKY.items():
            for match in re.finditer(pattern, text):
                if rel not in allowed:
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"quasar_dist/{rel}:{line}: {match.group(0)}")
    assert not found, "unjustified risky calls:\n" + "\n".join(found)


def test_config_yaml_loader_is_safe():
    from quasar_dist.util import typed_config

    assert issubclass(typed_config._Yaml12Loader, __import__("yaml").SafeLoader)
    with pytest.raises(Exception, match="could not determine a constructor"):
        typed_config.parse_yaml("x: !!python/object/apply:os.system ['touch /tmp/pwned']")


def test_pickle_only_model_folder_is_refused_and_torch_load_never_called(tmp_path, monkeypatch):
    calls = []

    def trap(*args, **kwargs):
        calls.append(args)
        raise AssertionError("torch.load called on a model file")

    monkeypatch.setattr(torch, "load", trap)
    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    folder = tmp_path / "evil"
    folder.mkdir()
    shutil.copy(TINY / "config.json", folder)
    shutil.copy(TINY / "tokenizer.json", folder)

    class Boom:  # what a malicious checkpoint does: run code when unpickled
        def __reduce__(self):
            return (Path.touch, (tmp_path / "PWNED",))

    for name in ("pytorch_model.bin", "model.pt", "weights.ckpt"):
        (folder / name).write_bytes(pickle.dumps(Boom()))
        with pytest.raises(ModelLoadError, match="refused, safetensors only"):
            load_model(folder)
    assert not (tmp_path / "PWNED").exists() and calls == []
    # a folder with both: the safetensors are used, the pickle is ignored (never opened)
    shutil.copy(TINY / "model.safetensors", folder)
    assert load_model(folder) is not None
    assert not (tmp_path / "PWNED").exists() and calls == []


def test_result_file_names_never_come_from_ids(tmp_path):
    out = tmp_path / "out"
    writer = ResultWriter(out, "r1", flush_rows=100, flush_interval_s=3600)
    nasty = ["../../etc/passwd", "/etc/shadow", "a/../../b", "..", "x\x00y", "C:\\win", "results/../../z"]
    rows = [output_row({"id": i, "prompt": "p", "reference": None}, {"answer": "1"}, mode="gsot", model="m",
                       run_id="r1", finished_at=time.time()) for i in nasty]
    writer.add(output_table(rows))
    writer.flush()
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert written == ["out/results/part-r1-00000.parquet"]
    assert len(read_done_hashes(out)) == len(nasty)


@pytest.mark.parametrize("value", ["../../etc", "runs/../../etc", "a/../../../tmp/x"])
def test_config_cannot_point_output_outside_its_tree(tmp_path, value):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"output: {value}\n")
    with pytest.raises(ConfigError, match=r"must not contain '\.\.'"):
        resolve_run_config(str(cfg))


def test_hardening_doc_covers_dashboard_and_job_api_token_auth():
    text = (REPO / "docs" / "hardening.md").read_text(encoding="utf-8")
    for needed in ("RAY_AUTH_MODE=token", "8265", "docs/deploy.md", "dashboard", "job submission"):
        assert needed in text, needed
    deploy = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "## Token authentication" in deploy
