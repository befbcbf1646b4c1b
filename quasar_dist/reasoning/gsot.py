"""GSoT, the guided sequence of thought (design.md "GSoT"), as decisions at step boundaries.

The engine has already fed the step's newline and committed (context update + temperature
refresh from cached A h). Here, in order:
  1. heat = mean temperature of the step's tokens; a step colder than backtrack_below is rolled
     back to the previous boundary and resampled (retry_temperature), at most max_retries times
     (without backtracking nothing decides on the heat at the boundary, and the engine computes
     the heats of all steps later, at once: engine/step_heats.py);
  2. accepted: evict entries colder than evict_below (sinks and recent entries protected; after
     prefill also all but the kv_budget warmest prompt entries), then
     checkpoint (the next step's backtrack target). Temperatures are read from the cache only
     for the settings that need them (eviction, the convergence test): with the defaults a
     boundary costs no tensor op here (the heat and the checkpoint come with the commit);
  3. stop or probe: max_steps reached, or temperatures stable (max change < epsilon) -> a final
     probe gives the answer; otherwise a trial probe, and a confident answer stops ("converged").
The prompt's boundary (step 0) only evicts and checkpoints: there is no step to score yet.
"""
from __future__ import annotations

from .evictors import entry_scores
from .policy import Policy
from .signals import budget_keep_mask, keep_mask, max_temperature_change
from .steps import probe_answer
from .task import Task


class GsotPolicy(Policy):
    def on_boundary(self, task: Task) -> None:
        seq, cfg = task.seq, self.config
        if seq.num_steps == 0:
            self._accept(task)
            return
        heat = seq.heat  # computed with the boundary's commit; None when nothing decides on it (deferred)
        if heat is not None and heat < cfg.backtrack_below and task.retries < cfg.max_retries:
            task.retries += 1
            self.engine.rollback(seq, task.checkpoint)
            self.engine.resume(seq, temperature=cfg.retry_temperature)
            return
        task.retries = 0
        self._accept(task)

    def _accept(self, task: Task) -> None:
        seq, cfg = task.seq, self.config
        current = None  # (positions, tau): read only for the settings that need them
        # the prompt's budget, after prefill (unless prefill already dropped to it: kv_budget_layer)
        prompt_rule = seq.num_steps == 0 and seq.prefill_budget is None
        budget = cfg.kv_budget if prompt_rule else None
        keep_above = cfg.kv_keep_above if prompt_rule else None
        if cfg.evict_below > 0 or cfg.epsilon > 0 or budget is not None or keep_above is not None:
            positions, tau = self.engine.temperatures(seq)
            keep = keep_mask(tau, cfg.evict_below, cfg.sink_tokens, cfg.recent_tokens)
            if keep_above is not None:  # the same rule as prefill dropping's (kv_score over layers)
                keep &= keep_mask(self.engine.keep_scores(seq, cfg.kv_score), keep_above, cfg.sink_tokens,
                                  max(1, cfg.recent_tokens))
            if budget is not None:
                warmth = self.engine.keep_scores(seq, cfg.kv_score) if cfg.kv_evictor == "ttm" else tau
                scores = entry_scores(cfg.kv_evictor, self.engine.runner.model, seq.prompt_ids, warmth,
                                      seed=seq.sampling.seed)  # per task, from its prompt
                keep &= budget_keep_mask(scores, budget, cfg.sink_tokens, cfg.recent_tokens)
            if not bool(keep.all()):
                self.engine.evict(seq, keep)
                positions, tau = positions[keep], tau[keep]
            current = (positions, tau)
        task.checkpoint = self.engine.checkpoint(seq)
        if seq.num_steps == 0:
            self.engine.resume(seq)
            return
        previous, task.previous_tau = task.previous_tau, current
        stable = cfg.epsilon > 0 and previous is not None and max_temperature_change(previous, current) < cfg.epsilon
        if seq.num_steps >= cfg.max_steps:
            task.final_reason = "max_steps"
        elif stable:
            task.final_reason = "converged"
        if task.final_reason is None and cfg.answer_confidence >= 1.0:
            self.engine.resume(seq)  # trial probes off: a product of probabilities never reaches 1
            return
        self.engine.probe(seq, self.mark_ids, cfg.probe_tokens)

    def finish(self, task: Task, stop_reason: str, answer: str | None) -> None:
        # every accepted step's (a rejected one was rolled back): the sequence's own list, which
        # the engine completes after the release (its deferred heats, engine/step_heats.py)
        task.heats = task.seq.step_heats
        super().finish(task, stop_reason, answer)

    def on_probe(self, task: Task) -> None:
        seq, cfg = task.seq, self.config
        result = seq.probe_result
        answer = probe_answer(self.tokenizer, self.mark_ids, result.token_ids)
        if task.final_reason is not None:
            self.finish(task, task.final_reason, answer)
        elif answer is not None and result.confidence >= cfg.answer_confidence:
            self.finish(task, "converged", answer)
        else:
            self.engine.resume(seq)
