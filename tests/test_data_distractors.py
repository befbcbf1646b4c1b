"""Distractor-heavy tasks (`quasar data make --distractors N`, issue #14 part 1): answers still
follow from the prompt, distractors are never needed, relevant_spans cover exactly what the
solution needs, long prompts reach 1,000+ tokens, splits stay disjoint, the default is unchanged."""
from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from quasar_dist.cli import main
from quasar_dist.data.tasks import make_tasks
from quasar_dist.model import TextTokenizer, load_model, resolve_model_path

from test_data import check_arith

COUNTS = [0, 10, 40]


def _relevant_text(task: dict) -> str:
    return " ".join(task["prompt"][s["start"] : s["end"]] for s in task["relevant_spans"])


def _irrelevant_sentences(task: dict) -> list[str]:
    """The prompt with the relevant spans cut out, as sentences."""
    prompt, kept, at = task["prompt"], [], 0
    for span in task["relevant_spans"]:
        kept.append(prompt[at : span["start"]])
        at = span["end"]
    kept.append(prompt[at:])
    return [s.strip() + "." for s in " ".join(kept).split(".") if s.strip()]


@pytest.mark.parametrize("n", COUNTS)
def test_arith_answers_hold_and_only_the_asked_subject_is_relevant(n):
    for task in make_tasks("arith", 24, 3, "test", distractors=n):
        assert len(_irrelevant_sentences(task)) == n
        subject = re.search(r"does (.+) have now\?$", task["prompt"])[1]
        subject = subject[0].upper() + subject[1:]
        check_arith({**task, "prompt": _relevant_text(task)})  # solvable from the relevant text alone
        assert all(not s.startswith(subject + " ") for s in _irrelevant_sentences(task))
        relevant = re.split(r"(?<=[.?]) ", _relevant_text(task))
        assert all(s.startswith(subject + " ") for s in relevant[:-1]) and relevant[-1].startswith("How many")


def _parse(prompt: str):
    m = re.fullmatch(r"Facts: (.*?) ?Rules \(each pair: the first holds if the second holds\): (.+?) "
                     r"Question: does (\w+) hold\?", prompt)
    assert m, prompt
    return set(re.findall(r"(\w+) true\.", m[1])), re.findall(r"(\w+) (\w+)\.", m[2]), m[3]


@pytest.mark.parametrize("n", COUNTS)
def test_logic_answers_follow_and_the_walk_never_meets_a_distractor(n):
    answers = []
    for task in make_tasks("logic", 24, 3, "test", distractors=n):
        facts, rules, query = _parse(task["prompt"])
        closure = set(facts)
        while new := {head for head, body in rules if body in closure} - closure:
            closure |= new
        expected = "yes" if query in closure else "no"
        assert task["answer"] == expected
        answers.append(expected)
        *steps, last = task["solution"].split("\n")
        assert last == f"#### {expected}"
        relevant = _relevant_text(task)
        for line in steps:  # every lookup of the walk has exactly one pair, inside the relevant spans
            _, head, body = line.split(" ")
            pairs = [b for h, b in rules if h == head] + (["true"] if head in facts else [])
            assert pairs == ([] if body == "none" else [body]), (line, task["prompt"])
            if body != "none":
                assert f"{head} {body}." in relevant
        assert relevant.endswith(f"does {query} hold?")
        assert "Facts:" not in relevant and "Rules" not in relevant and "Question:" not in relevant  # boilerplate
        assert len(_irrelevant_sentences(task)) >= n
    assert answers.count("yes") == answers.count("no")


def test_long_prompts_reach_1000_tokens_and_splits_stay_disjoint():
    folder = resolve_model_path("tiny")
    tokenizer = TextTokenizer.from_folder(folder, load_model(folder).config)
    longest = max(len(tokenizer.encode_prompt(t["prompt"])) for t in make_tasks("arith", 8, 1, "test", distractors=160))
    assert longest >= 1000
    def cores(split):  # the problem without its distractors: what the split hashes
        return {_relevant_text(t) for t in make_tasks("arith", 40, 2, split, distractors=10)}
    assert not cores("train") & cores("test")


def test_cli_writes_relevant_spans_and_the_default_is_unchanged(tmp_path):
    out = tmp_path / "t.parquet"
    result = CliRunner().invoke(main, ["data", "make", "--kind", "mixed", "--n", "8", "--seed", "4",
                                       "--distractors", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    spans_type = table.schema.field("relevant_spans").type
    assert pa.types.is_list(spans_type)  # the list's item name ("item"/"element") is the writer's
    assert spans_type.value_type == pa.struct([("start", pa.int32()), ("end", pa.int32())])
    row = table.to_pylist()[0]
    assert row["relevant_spans"] and all(0 <= s["start"] < s["end"] <= len(row["prompt"]) for s in row["relevant_spans"])
    plain = tmp_path / "p.parquet"
    CliRunner().invoke(main, ["data", "make", "--kind", "mixed", "--n", "8", "--seed", "4", "--out", str(plain)])
    assert "relevant_spans" not in pq.read_table(plain).column_names
    assert pq.read_table(plain).to_pylist() == [{k: v for k, v in t.items()} for t in
                                                 [dict(t) for t in make_tasks("mixed", 8, 4)]]
    bad = CliRunner().invoke(main, ["data", "make", "--kind", "arith", "--n", "2", "--distractors", "-1", "--out", str(out)])
    assert bad.exit_code != 0 and "distractors must be >= 0" in bad.output


def test_id_prefix_lets_files_of_other_counts_share_one_dataset(tmp_path):
    """Files of one kind and split made with other seeds or distractor counts have the same ids
    (KIND-SPLIT-INDEX); `--id-prefix` keeps them apart, and a prefix that is not a plain name is one line."""
    ids = []
    for d in (20, 40):
        out = tmp_path / f"d{d}.parquet"
        result = CliRunner().invoke(main, ["data", "make", "--kind", "arith", "--n", "3", "--seed", str(777 + d),
                                           "--distractors", str(d), "--id-prefix", f"d{d}-", "--out", str(out)])
        assert result.exit_code == 0, result.output
        ids += pq.read_table(out).column("id").to_pylist()
    assert ids == [f"d{d}-arith-test-{i:06d}" for d in (20, 40) for i in range(3)]
    bad = CliRunner().invoke(main, ["data", "make", "--kind", "arith", "--n", "2", "--id-prefix", "a/b",
                                    "--out", str(tmp_path / "x.parquet")])
    assert bad.exit_code != 0 and "--id-prefix may hold" in bad.output and not (tmp_path / "x.parquet").exists()
