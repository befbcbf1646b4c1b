"""Data generators, splits, answers and tokenizer: correctness is recomputed here independently.

Arithmetic steps are re-parsed with a tiny regex parser (no eval); logic answers come from
forward chaining over facts and rules parsed back out of the prompt text.
"""
from __future__ import annotations

import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

from quasar_dist.data.answers import answers_match, extract_answer
from quasar_dist.data.sample_asset import SAMPLE_PATH, make_sample
from quasar_dist.data.splits import split_of
from quasar_dist.data.tasks import COLUMNS, make_tasks, read_tasks, training_text, write_tasks
from quasar_dist.data.token_stats import markdown_table, token_lengths
from quasar_dist.data.tokenizer_build import build_tokenizer

KINDS = ("arith", "logic")


@pytest.fixture(scope="module")
def train_sets():
    return {k: make_tasks(k, 2000, 7, "train") for k in KINDS}


@pytest.fixture(scope="module")
def test_sets():
    return {k: make_tasks(k, 300, 7, "test") for k in KINDS}


@pytest.fixture(scope="module")
def tokenizer(train_sets):
    return build_tokenizer(training_text(t) for k in KINDS for t in train_sets[k][:1000])


# --- determinism, splits, format ----------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS + ("mixed",))
def test_same_seed_same_tasks_and_prefix_stable(kind):
    a = make_tasks(kind, 24, 3, "val")
    assert a == make_tasks(kind, 24, 3, "val")
    assert make_tasks(kind, 12, 3, "val") == a[:12]  # a smaller n is a prefix
    assert a != make_tasks(kind, 24, 4, "val")


def test_splits_are_disjoint_and_match_the_hash(train_sets, test_sets):
    for kind in KINDS:
        train = {t["prompt"] for t in train_sets[kind]}
        test = {t["prompt"] for t in test_sets[kind]}
        assert len(train) == 2000 and len(test) == 300, "duplicate prompts within a set"
        assert not train & test
        assert all(split_of(p) == "train" for p in train) and all(split_of(p) == "test" for p in test)


@pytest.mark.parametrize("kind", KINDS)
def test_row_format(kind, test_sets):
    for i, t in enumerate(test_sets[kind]):
        assert set(t) == set(COLUMNS) and all(isinstance(t[c], str) for c in COLUMNS)
        assert t["id"] == f"{kind}-test-{i:06d}" and t["kind"] == kind
        assert not t["prompt"].endswith("\n") and "\n" not in t["prompt"]
        lines = t["solution"].split("\n")
        assert lines[-1] == f"#### {t['answer']}"
        assert not any(line.startswith("####") for line in lines[:-1])
        assert extract_answer(training_text(t)) == t["answer"]


# --- arith: recompute every step ---------------------------------------------------------------

STEP = re.compile(r"(\d+) ([-+*]) (\d+) = (\d+)")


def apply(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def check_arith(task: dict) -> int:
    """Verify one arith task; return its step count."""
    *steps, last = task["solution"].split("\n")
    known = {int(x) for x in re.findall(r"\d+", task["prompt"])}
    result = None
    for line in steps:
        m = STEP.fullmatch(line)
        assert m, line
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        assert a in known and b in known, (line, task["prompt"])
        assert apply(a, op, b) == c and 0 <= c < 1000, line
        if op == "*":
            assert min(a, b) <= 10, line
        known.add(c)
        result = c
    assert last == f"#### {result}" and task["answer"] == str(result)
    return len(steps)


def test_arith_steps_are_correct_and_balanced(train_sets, test_sets):
    for tasks in (train_sets["arith"], test_sets["arith"]):
        counts = Counter(check_arith(t) for t in tasks)
        assert set(counts) == {2, 3, 4, 5}
        assert max(counts.values()) - min(counts.values()) <= 1


def test_about_half_of_arith_has_distractors(train_sets):
    def has_distractor(task):
        subject = re.search(r"does (.+) have now\?$", task["prompt"])[1]
        sentences = task["prompt"].split(". ")[:-1]
        return any(not s.lower().startswith(subject.lower()) for s in sentences)
    share = sum(map(has_distractor, train_sets["arith"])) / len(train_sets["arith"])
    assert 0.4 < share < 0.6


# --- logic: forward chaining on the parsed prompt, then the backward solution is re-walked ------

def parse_logic(prompt: str):
    m = re.fullmatch(r"Facts: (.+?) Rules \(each pair: the first holds if the second holds\): (.+?) "
                     r"Question: does (\w+) hold\?", prompt)
    assert m, prompt
    facts = re.findall(r"(\w+) true\.", m[1])
    assert m[1] == " ".join(f"{f} true." for f in facts), m[1]
    rules = [(body, head) for head, body in re.findall(r"(\w+) (\w+)\.", m[2])]  # (premise, conclusion)
    assert m[2] == " ".join(f"{c} {p}." for p, c in rules), m[2]
    return set(facts), rules, m[3]


def check_logic(task: dict) -> tuple[int, str]:
    facts, rules, query = parse_logic(task["prompt"])
    closure = set(facts)
    while True:
        new = {c for p, c in rules if p in closure} - closure
        if not new:
            break
        closure |= new
    expected = "yes" if query in closure else "no"
    assert task["answer"] == expected, task["prompt"]
    *steps, last = task["solution"].split("\n")
    bodies = {c: p for p, c in rules} | {f: "true" for f in facts}
    assert len(bodies) == len(rules) + len(facts), "each proposition has at most one pair"
    goal = query
    for i, line in enumerate(steps):
        word, head, body = line.split(" ")
        assert (word, head) == ("need", goal), line
        assert body == bodies.get(head, "none"), line
        assert (body in ("true", "none")) == (i == len(steps) - 1), "the chain ends exactly at its root"
        goal = body
    assert last == f"#### {expected}" and (goal == "true") == (expected == "yes")
    return len(steps) - 1, expected


def test_logic_answers_follow_and_are_balanced(train_sets, test_sets):
    for tasks in (train_sets["logic"], test_sets["logic"]):
        results = [check_logic(t) for t in tasks]
        hops, answers = Counter(h for h, _ in results), Counter(a for _, a in results)
        assert set(hops) == {2, 3, 4, 5} and max(hops.values()) - min(hops.values()) <= 2
        assert abs(answers["yes"] - answers["no"]) <= 1


# --- answers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("3 + 4 = 7\n#### 7", "7"),
    ("#### 017", "17"),
    ("#### 1 000", "1000"),
    ("#### 1,000.", "1000"),
    ("#### -0", "0"),
    ("#### 5\n#### 6\nmore text", "6"),
    ("a\n####  Yes \nthe end", "yes"),
    ("#### NO", "no"),
    ("no marker here", None),
    ("####", None),
    ("#### \n", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_answers_match():
    assert answers_match("017", "17") and answers_match(" Yes", "yes") and answers_match("1 2", "12")
    assert not answers_match("18", "17") and not answers_match(None, "17") and not answers_match("no", "yes")


# --- tokenizer ----------------------------------------------------------------------------------

def test_tokenizer_roundtrip_and_newline(tokenizer, test_sets):
    assert [tokenizer.token_to_id(t) for t in ("<pad>", "<bos>", "<eos>", "<unk>")] == [0, 1, 2, 3]
    newline_ids = tokenizer.encode("\n").ids
    assert len(newline_ids) == 1
    assert [tok for tok in tokenizer.get_vocab() if "Ċ" in tok] == ["Ċ"]  # never merged
    odd = ["  two  spaces\n\n\nthree newlines ", "ünïcödé 😀 12.50 -3", "\tTab\r\n", "007 + 1 = 8"]
    for text in [training_text(t) for k in KINDS for t in test_sets[k][:100]] + odd:
        enc = tokenizer.encode(text)
        assert tokenizer.decode(enc.ids) == text
        assert tokenizer.token_to_id("<unk>") not in enc.ids
        assert enc.ids.count(newline_ids[0]) == text.count("\n")


def test_tokenizer_words_and_digits_are_single_tokens(tokenizer, test_sets):
    for text in [training_text(t) for k in KINDS for t in test_sets[k][:100]]:
        for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text):
            if re.fullmatch(r"Ġ?[A-Za-z]+", piece) or re.fullmatch(r"\d", piece):
                assert len(tokenizer.encode(piece.replace("Ġ", " ")).ids) == 1, piece


def test_token_lengths_are_short(tokenizer, test_sets):
    lengths = token_lengths(tokenizer, test_sets["arith"] + test_sets["logic"])
    print("\n" + markdown_table(lengths))
    assert max(max(v) for v in lengths.values()) <= 160
    assert sum(lengths[("arith", 5)]) / len(lengths[("arith", 5)]) <= 120


# --- errors, files ------------------------------------------------------------------------------

def test_unknown_kind_and_split_raise_one_line_errors():
    with pytest.raises(ValueError, match=r"^unknown task kind 'poetry' \(known: arith, logic, mixed\)$"):
        make_tasks("poetry", 1, 0)
    with pytest.raises(ValueError, match=r"^unknown split 'dev' \(known: train, val, test\)$"):
        make_tasks("arith", 1, 0, "dev")


def test_parquet_roundtrip_and_sample_asset(tmp_path):
    rows = make_tasks("mixed", 10, 5, "val")
    path = write_tasks(rows, tmp_path / "t.parquet")
    assert read_tasks(path) == rows
    schema = pq.read_schema(SAMPLE_PATH)
    assert schema.names == list(COLUMNS) and all(str(schema.field(c).type) == "string" for c in COLUMNS)
    sample = read_tasks(SAMPLE_PATH)
    assert sample == make_sample(), "regenerate with python -m quasar_dist.data.sample_asset"
    assert Counter(t["kind"] for t in sample) == {"arith": 32, "logic": 32}
    assert all(t["id"].startswith(f"{t['kind']}-test-") and split_of(t["prompt"]) == "test" for t in sample)
