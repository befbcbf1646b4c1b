"""`quasar_dist.build_processor` in a user-style Ray Data pipeline on a local Ray instance:
read_parquet -> preprocess -> processor -> filter -> write_parquet, with the real Ray Data and
the real replica stage (the shipped model, or a small random one in the same format)."""
from __future__ import annotations


import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

import quasar_dist
from quasar_dist.data.tasks import make_tasks
from quasar_dist.model.folder import SHIPPED
from quasar_dist.util.typed_config import ConfigError

HAS_TINY = (SHIPPED["tiny"] / "config.json").is_file()
GSOT = {"max_steps": 4, "max_new_tokens": 48, "max_batch_size": 4}


def test_bad_config_is_refused_before_any_actor_starts(tmp_path):
    with pytest.raises(ConfigError, match="gsot.max_stepz"):
        quasar_dist.build_processor({"gsot": {"max_stepz": 2}})
    with pytest.raises(ConfigError, match="replicas"):
        quasar_dist.build_processor({"replicas": 0})
    with pytest.raises(Exception, match="no-model"):
        quasar_dist.build_processor({"model": str(tmp_path / "no-model")})


def test_user_pipeline_read_preprocess_process_filter_write(tmp_path, model):
    tasks = make_tasks("mixed", 6, 5)
    # the user's own column names, plus a column of theirs the processor must carry through
    rows = [{"qid": t["id"], "question": t["prompt"], "gold": t["answer"], "source": "mine"} for t in tasks]
    rows.append({"qid": "blank", "question": "", "gold": "1", "source": "mine"})
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "tasks.parquet")

    processor = quasar_dist.build_processor(
        quasar_dist.ProcessorConfig(model=model, mode="cot", batch_size=4, gsot=GSOT),
        preprocess=lambda row: {"id": row["qid"], "prompt": row["question"], "answer": row["gold"], "source": row["source"]},
        postprocess=lambda row: {"id": row["id"], "answer": row["answer"], "correct": row["correct"],
                                 "error": row["error"], "steps": row["num_steps"], "source": row["source"]},
    )
    ray.init(num_cpus=3, include_dashboard=False)
    try:
        ds = processor(ray.data.read_parquet(str(tmp_path / "in")))
        ds.filter(lambda row: row["error"] is None).write_parquet(str(tmp_path / "out"))
    finally:
        ray.shutdown()
    out = pq.read_table(tmp_path / "out").to_pylist()
    assert sorted(r["id"] for r in out) == sorted(t["id"] for t in tasks)  # the blank prompt: an error row, filtered out
    assert all(r["source"] == "mine" and r["steps"] >= 1 and isinstance(r["correct"], bool) for r in out)
    if HAS_TINY:  # the shipped model solves these (docs/training.md)
        assert sum(r["correct"] for r in out) >= 4
