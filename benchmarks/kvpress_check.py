"""External cross-check of our KV-eviction baselines (issue #15, quasar_dist/bench/kv_budget.py)
against NVIDIA's kvpress library: the same held-out distractor tasks, the model loaded as a
plain `transformers.LlamaForCausalLM`, the prompt's KV cache compressed by a kvpress press right
after prefill, then greedy decoding. Standalone: nothing in the package imports this file.

Setup (once). kvpress 0.5.5 pins transformers<5.3, and the project's .venv has transformers
5.24.0, so it gets its own venv (ignored by git):

    python3.11 -m venv benchmarks/.kvpress-venv
    benchmarks/.kvpress-venv/bin/pip install torch==2.13.0      # the local CPU wheel, not a CUDA build
    benchmarks/.kvpress-venv/bin/pip install kvpress==0.5.5 pyarrow tokenizers
    benchmarks/.kvpress-venv/bin/pip install -e . --no-deps     # quasar_dist, for the tasks and answers

Run (from the repository root):

    benchmarks/.kvpress-venv/bin/python benchmarks/kvpress_check.py                # full check
    benchmarks/.kvpress-venv/bin/python benchmarks/kvpress_check.py --n 4 \\
        --presses SnapKVPress --budgets 0.25 --compare-engine --json /tmp/kvpress_tiny.json

`--compare-engine` also decodes the full-cache tasks with our engine (CoT, guidance off) and
reports, task by task, whether both give the same output: a check on the prompt format, the
stop rules and the weights, not part of the comparison itself. If StreamingLLMPress ran, it
also runs our `streaming` evictor with kvpress's kept count as the budget on each task where
that count covers our protected entries: both then keep the same entries, so the outputs must
agree (a check of eviction and positions). It exits 1 on any disagreement.

What matches our engine: the input is [bos] + encode(prompt + "\\n") (bos/eos from config.json);
the whole prompt is the context (there is no separate question: the first new token comes from
the prefill's logits, computed with the full cache, and every later one reads the compressed
cache); positions go on from the prompt's length after eviction (no key re-rotation); greedy
decoding stops as CotPolicy does: at EOS, at the end of a line starting with "####", after
max_steps lines, after max_new_tokens, or when the model's positions (max_position_embeddings)
run out; a prompt that leaves fewer than min(min_generation_room, max_new_tokens) positions is
refused (counted wrong), as solve_prompts does. The answer is extract_answer of the output.

The presses, at compression_ratio = 1 - budget: StreamingLLMPress(n_sink=4),
SnapKVPress(window_size=8, kernel_size=7), RandomPress(seed=sequence_seed(0, prompt), the
seed our random evictor uses for the task). Where kvpress differs from ours
(reasoning/evictors.py, reasoning/signals.py):
  * kvpress decides per layer and per KV head (SnapKV, Random); ours keeps one set of entries
    for every layer and head. RandomPress re-seeds on every layer, so its draw differs between
    KV heads but is the same in every layer.
  * kvpress keeps int(prompt_len * (1 - compression_ratio)) entries (1 - (1 - 0.1) is a hair
    under 0.1, so that can be one fewer than prompt_len * budget) and protects nothing but what
    the press itself protects (StreamingLLM: its sinks, then the most recent entries; SnapKV:
    its observation window, which gets the top score; Random: nothing, not even bos or the
    prompt's last token). Ours keeps ceil(budget * prompt_len) but never fewer than the 4 sinks
    + 16 recent entries (ReasoningConfig.sink_tokens/recent_tokens) that every method
    protects: on ~100-token prompts budget 0.1 keeps 20 entries with us and ~10 with kvpress.
    The rows' kv_kept_fraction is what kvpress really kept.
  * SnapKVPress averages the window's attention over its queries, avg-pools it per head and
    averages over each GQA group; ours sums over the window, layers and heads, and max-pools.
  * Our snapkv reads attention from an eager re-run of the prompt; kvpress recomputes the
    window's queries against the cached keys inside the hook. Same attention, other code.

Caveat on the task set (the shipped model has 256 positions): arith prompts with 40
distractors are ~340-390 tokens and are refused by our engine and here alike (counted wrong,
the `refused` field); arith with 20 distractors (~200 tokens) leaves ~50 positions to reason in.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # quasar_dist from this checkout, installed or not

# The task set, answer matching, the reasoning defaults and our evictors' constants come from the package.
from quasar_dist.bench.kv_budget import long_tasks  # noqa: E402
from quasar_dist.data.answers import answers_match, extract_answer  # noqa: E402
from quasar_dist.reasoning.config import ReasoningConfig  # noqa: E402
from quasar_dist.reasoning.evictors import SNAPKV_POOL, SNAPKV_WINDOW  # noqa: E402
from quasar_dist.reasoning.task import sequence_seed  # noqa: E402

SINKS = ReasoningConfig().sink_tokens  # 4: StreamingLLM's sinks, as ours
DEFAULT_MODEL = REPO / "quasar_dist" / "assets" / "tiny"
PRESSES = ("StreamingLLMPress", "SnapKVPress", "RandomPress")
BUDGETS = (0.1, 0.25, 0.5)
MAX_NEW_TOKENS = 128
ANSWER_MARK = "####"


def load_hf(folder: Path):
    """The model as transformers reads it (no remote code): only the `*.ttm.*` tensors may be left over."""
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model, info = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    unexpected = [k for k in info.get("unexpected_keys", []) if ".ttm." not in k]
    if info.get("missing_keys") or unexpected or info.get("mismatched_keys"):
        sys.exit(f"{folder}: weights do not load as LlamaForCausalLM: {info}")
    return model.eval()


class PromptTokenizer:
    """tokenizer.json through the `tokenizers` library; bos/eos ids from config.json."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.bos = cfg.get("bos_token_id")
        eos = cfg.get("eos_token_id")
        self.eos = frozenset([] if eos is None else eos if isinstance(eos, list) else [eos])
        self.max_len = int(cfg.get("max_position_embeddings", 2048))
        self.newline = frozenset(i for i in range(self.tok.get_vocab_size()) if "\n" in self.decode([i]))

    def prompt_ids(self, prompt: str) -> list[int]:
        ids = self.tok.encode(prompt.rstrip("\n") + "\n", add_special_tokens=False).ids
        return ([self.bos] if self.bos is not None else []) + ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)


def make_press(name: str, budget: float):
    import kvpress

    ratio = 1.0 - budget
    if name == "StreamingLLMPress":
        return kvpress.StreamingLLMPress(compression_ratio=ratio, n_sink=SINKS)
    if name == "SnapKVPress":
        return kvpress.SnapKVPress(compression_ratio=ratio, window_size=SNAPKV_WINDOW, kernel_size=SNAPKV_POOL)
    if name == "RandomPress":
        return kvpress.RandomPress(compression_ratio=ratio, seed=0)  # re-seeded per task below
    raise SystemExit(f"unknown press {name!r} (use {', '.join(PRESSES)})")


@torch.no_grad()
def decode_task(model, tok: PromptTokenizer, prompt: str, press, cfg) -> dict:
    """Prefill (compressing under `press`), then greedy decoding with CotPolicy's stop rules."""
    from transformers import DynamicCache

    ids = tok.prompt_ids(prompt)
    n = len(ids)
    if n + min(cfg.min_generation_room, cfg.max_new_tokens) > tok.max_len:
        return {"prompt_tokens": n, "kept": 0, "output_ids": [], "stop": "refused"}
    if press is not None and hasattr(press, "seed"):
        press.seed = sequence_seed(cfg.seed, prompt)  # per task, as our random evictor
    cache = DynamicCache()
    with press(model) if press is not None else nullcontext():
        out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True, logits_to_keep=1)
    kept = cache.get_seq_length()
    output, line_start, lines, position = [], 0, 0, n
    token = int(out.logits[0, -1].argmax())
    while True:
        output.append(token)
        if token in tok.eos:
            stop = "eos"
            break
        if token in tok.newline:
            lines += 1
            if tok.decode(output[line_start:]).lstrip().startswith(ANSWER_MARK):
                stop = "answer"
                break
            line_start = len(output)
        if len(output) >= cfg.max_new_tokens:
            stop = "max_tokens"
            break
        if position + 1 > tok.max_len:
            stop = "context"
            break
        if token in tok.newline and lines >= cfg.max_steps:
            stop = "max_steps"
            break
        out = model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True,
                    position_ids=torch.tensor([[position]]))
        position += 1
        token = int(out.logits[0, -1].argmax())
    return {"prompt_tokens": n, "kept": kept, "output_ids": output, "stop": stop}


def run_method(model, tok, tasks, press_name, budget, cfg, details) -> dict:
    start = time.perf_counter()
    correct = prompt_total = kept_total = refused = 0
    for index, task in enumerate(tasks):
        press = make_press(press_name, budget) if press_name else None
        r = decode_task(model, tok, task["prompt"], press, cfg)
        answer = extract_answer(tok.decode(r["output_ids"]))
        ok = answers_match(answer, task["answer"])
        correct += ok
        if r["stop"] == "refused":
            refused += 1
        else:
            prompt_total += r["prompt_tokens"]
            kept_total += r["kept"]
        if details is not None:
            details.append({"method": method_name(press_name), "budget": budget, "index": index, "id": task["id"],
                            "kind": task["kind"],
                            "prompt_tokens": r["prompt_tokens"], "kept": r["kept"], "stop": r["stop"],
                            "generated_tokens": len(r["output_ids"]),
                            "answer": answer, "reference": task["answer"], "correct": ok,
                            "output": tok.decode(r["output_ids"])})
    return {"method": method_name(press_name), "budget": budget, "accuracy": correct / max(1, len(tasks)),
            "tasks": len(tasks), "kv_kept_fraction": kept_total / max(1, prompt_total), "refused": refused,
            "wall_s": round(time.perf_counter() - start, 2)}


def method_name(press_name: str | None) -> str:
    return f"kvpress:{press_name or 'none'}"


def compare_engine(folder: Path, tasks, cfg, details: list[dict]) -> int:
    """Our engine on the same tasks, full cache, CoT, guidance off: task-by-task agreement."""
    from quasar_dist import load_model
    from quasar_dist.model import TextTokenizer
    from quasar_dist.reasoning.solve import solve_prompts

    model = load_model(folder)
    tokenizer = TextTokenizer.from_folder(folder, model.config)
    ours = solve_prompts(model, tokenizer, [t["prompt"] for t in tasks], cfg)
    hf = [d for d in details if d["method"] == method_name(None)]
    same = 0
    print("\nfull cache, our engine vs transformers:")
    for task, o, h in zip(tasks, ours, hf):
        our_text = "\n".join(o["steps"])
        their_steps = [s.rstrip() for s in h["output"].split("\n")]
        agree = (o["answer"] == h["answer"] and their_steps[: len(o["steps"])] == o["steps"]
                 and o["generated_tokens"] == h["generated_tokens"])
        same += agree
        print(f"  {task['id']:<28} ours={o['answer']!s:<8} hf={h['answer']!s:<8} ref={task['answer']:<6} "
              f"tokens ours={o['generated_tokens']}/hf={h['generated_tokens']} "
              f"stop ours={o['stop_reason']}/hf={h['stop']} {'same' if agree else 'DIFFERENT'}")
        if not agree:
            print(f"    ours: {our_text[:200]!r}\n    hf:   {h['output'][:200]!r}")
    acc = sum(answers_match(o["answer"], t["answer"]) for o, t in zip(ours, tasks)) / max(1, len(tasks))
    print(f"  our engine accuracy {acc:.3f}; same output on {same}/{len(tasks)} tasks")
    return (len(tasks) - same) + compare_streaming(model, tokenizer, tasks, cfg, details)


def compare_streaming(model, tokenizer, tasks, cfg, details: list[dict]) -> int:
    """StreamingLLMPress keeps the sinks and the most recent entries; so does our `streaming`
    evictor. Given kvpress's kept count as our budget (a count) and kvpress's sink count (the
    curve's own setting keeps 1 sink: kv_budget.evicting), both keep the same entries whenever
    that count covers our protected sinks + recent window: the outputs must agree."""
    from dataclasses import replace

    from quasar_dist.bench.kv_budget import evicting
    from quasar_dist.reasoning.solve import solve_prompts

    base = replace(cfg, max_batch_size=1)
    rows = [d for d in details if d["method"] == method_name("StreamingLLMPress") and d["stop"] != "refused"
            and d["kept"] >= SINKS + base.recent_tokens]
    if not rows:
        return 0
    same = 0
    for d in rows:
        config = replace(evicting(base, "streaming", float(d["kept"]), model.config.guidance), sink_tokens=SINKS)
        o = solve_prompts(model, tokenizer, [tasks[d["index"]]["prompt"]], config)[0]
        same += (o["answer"], o["generated_tokens"]) == (d["answer"], d["generated_tokens"])
    print(f"StreamingLLMPress vs our streaming evictor at kvpress's kept count: same output on {same}/{len(rows)} "
          f"(task, budget) pairs")
    return len(rows) - same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="Hugging Face Llama folder (default: the shipped tiny model)")
    ap.add_argument("--n", type=int, default=100, help="tasks per kind (split over distractor counts 20 and 40)")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "kvpress_check.json", help="where the rows go")
    ap.add_argument("--presses", nargs="+", default=list(PRESSES), choices=PRESSES)
    ap.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    ap.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--details", type=Path, help="also write one JSON line per task and method here")
    ap.add_argument("--compare-engine", action="store_true",
                    help="also run our engine (full cache, CoT, guidance off) on the same tasks and compare")
    args = ap.parse_args(argv)
    from importlib.util import find_spec

    if find_spec("kvpress") is None:
        sys.exit("kvpress is not installed here: run this with benchmarks/.kvpress-venv/bin/python (setup: see --help)")
    torch.set_num_threads(args.threads)
    cfg = ReasoningConfig(mode="cot", guidance="off", max_new_tokens=args.max_new_tokens)
    tasks = long_tasks(args.n)
    model, tok = load_hf(args.model), PromptTokenizer(args.model)
    details: list[dict] = []
    rows = [run_method(model, tok, tasks, None, 1.0, cfg, details)]
    for press_name in args.presses:
        for budget in args.budgets:
            rows.append(run_method(model, tok, tasks, press_name, budget, cfg, details))
            print(f"  {press_name} {budget}: {rows[-1]['accuracy']:.3f} ({rows[-1]['wall_s']} s)", file=sys.stderr)

    from importlib.metadata import version

    print(f"kvpress {version('kvpress')}, transformers {version('transformers')}, torch {torch.__version__}, "
          f"model {args.model}, {len(tasks)} tasks ({rows[0]['refused']} refused: prompt too long)")
    print(f"{'method':<26}{'budget':>7}{'accuracy':>10}{'kept':>7}{'wall_s':>8}")
    for r in rows:
        print(f"{r['method']:<26}{r['budget']:>7}{r['accuracy']:>10.3f}{r['kv_kept_fraction']:>7.3f}{r['wall_s']:>8}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    if args.details is not None:
        args.details.write_text("".join(json.dumps(d) + "\n" for d in details), encoding="utf-8")
    if args.compare_engine:
        return 1 if compare_engine(args.model, tasks, cfg, details) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
