"""Helpers of the quasar_reasoning lm-eval task: local Parquet tasks in, quasar's scoring out."""
from __future__ import annotations


def load_tasks(data_files: str | None = None, kinds: str | None = None, **_ignored):
    """DatasetDict {"test": the tasks} from a local Parquet file (id, prompt, answer, kind)."""
    import datasets
    import pyarrow.parquet as pq

    from quasar_dist.batch.inputs import SHIPPED_TASKS as shipped

    table = pq.read_table(data_files or shipped, columns=["id", "prompt", "answer", "kind"])
    rows = [{k: (None if v is None else str(v)) for k, v in r.items()} for r in table.to_pylist()]
    if kinds:
        wanted = set(kinds.split(","))
        rows = [r for r in rows if r["kind"] in wanted]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_results(doc: dict, results: list[str]) -> dict:
    """acc: quasar's answer (after the last '####', normalised) equals the reference."""
    from quasar_dist.data.answers import answers_match, extract_answer

    return {"acc": float(answers_match(extract_answer(results[0]), doc["answer"]))}
