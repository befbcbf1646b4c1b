"""lm-evaluation-harness's model `quasar`, registered when this module is imported.

    lm-eval run --model quasar --model_args model=tiny,mode=gsot --tasks quasar_reasoning   (via `quasar lm-eval`)

- generate_until: the prompts through our Reasoner (GSoT or CoT, the engine's continuous
  batching), `batch_size` prompts per call; the text returned is the reasoning steps, one per
  line, ending with the `#### answer` line, cut at the first `until` string. lm-eval's
  `max_gen_toks` is not used: the Reasoner's own limits (max_steps, max_new_tokens, given in
  model_args) decide, so a run here and a `quasar run` with the same settings generate alike.
- loglikelihood(_rolling): the model's plain forward (guidance off: scoring has no steps),
  summed log-probabilities of the continuation's tokens and whether each was the argmax.

model_args: model (tiny or a local folder), mode (gsot|cot), tp, and any ReasoningConfig field
(max_steps=4, max_new_tokens=64, ...), typed by ReasoningConfig.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

DEFAULT_BATCH = 64


@register_model("quasar")
class QuasarLM(LM):
    def __init__(self, model: str = "tiny", mode: str = "gsot", tp: int = 1, batch_size=None, max_batch_size=None,
                 device: str | None = None, **gsot) -> None:
        super().__init__()
        from quasar_dist.reasoning.reasoner import Reasoner

        if device and str(device).startswith("cuda") and not torch.cuda.is_available():
            device = None  # lm-eval's default is cuda; the Reasoner picks cuda when there is one, else cpu
        self.reasoner = Reasoner(model=model, mode=mode, tp=int(tp), device=device, **gsot)
        self.chunk = int(batch_size) if str(batch_size).isdigit() and int(batch_size) > 1 else DEFAULT_BATCH
        self.model_name = str(model)
        self._scorer = None

    # -- generation: the Reasoner ------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        prompts = [r.args[0] for r in requests]
        untils = [_until(r.args[1] if len(r.args) > 1 else {}) for r in requests]
        rows = []
        for start in range(0, len(prompts), self.chunk):
            rows.extend(self.reasoner.solve(prompts[start:start + self.chunk]))
        return [_cut(generation_text(row), until) for row, until in zip(rows, untils)]

    # -- scoring: the model's forward --------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return [self._score(*r.args[:2]) for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return [self._score("", r.args[0])[0] for r in requests]

    def _score(self, context: str, continuation: str) -> tuple[float, bool]:
        model, tokenizer = self._scoring_model()
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        ctx, cont = bos + tokenizer.encode(context), tokenizer.encode(continuation)
        if not cont:
            return 0.0, True
        ids = (ctx + cont)[-(max_positions(model) + 1):]  # keep the continuation, cut the context's start
        inputs = torch.tensor([ids[:-1]], device=next(model.parameters()).device)
        with torch.no_grad():
            logprobs = F.log_softmax(model(inputs).float(), dim=-1)[0, -len(cont):]
        target = torch.tensor(ids[-len(cont):], device=logprobs.device)
        picked = logprobs.gather(1, target[:, None])[:, 0]
        return float(picked.sum()), bool((logprobs.argmax(-1) == target).all())

    def _scoring_model(self):
        if self._scorer is None:
            reasoner = self.reasoner
            if getattr(reasoner, "model", None) is not None:  # tp=1: the Reasoner's own model
                self._scorer = (reasoner.model, reasoner.tokenizer)
            else:  # tp>1 holds the model in a Ray gang; scoring loads one copy here
                from quasar_dist.model import TextTokenizer, load_model, resolve_model_path

                model = load_model(self.model_name, guidance="off").eval()
                self._scorer = (model, TextTokenizer.from_folder(resolve_model_path(self.model_name), model.config))
        return self._scorer


def generation_text(row: dict) -> str:
    """What the model wrote for a task: its steps, one a line (the last is `#### answer` when it
    answered); an error row wrote nothing. An answer taken from a trial-answer probe (stop
    reason `converged`) is not a step: it is added as the `####` line, as the row reports it."""
    from quasar_dist.data.answers import ANSWER_MARK, extract_answer

    if row.get("error"):
        return ""
    text = "\n".join(row.get("steps") or [])
    if row.get("answer") and extract_answer(text) != row["answer"]:
        text += f"\n{ANSWER_MARK} {row['answer']}"
    return text


def max_positions(model) -> int:
    cfg = getattr(model, "config", None)
    return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "max_seq_len", None) or 4096)


def _until(gen_kwargs: dict) -> list[str]:
    until = (gen_kwargs or {}).get("until") or []
    return [until] if isinstance(until, str) else list(until)


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text
