"""Cluster metrics through `ray.util.metrics`: exported by every node's metrics agent, so a
Prometheus scraping the Ray cluster sees them. Recorded where the work happens (the replica
stage actors), tagged with mode and model. Names as Prometheus sees them (Ray 2.60):

    quasar_tasks_completed  -> ray_quasar_tasks_completed_total  (errors included)
    quasar_tokens_generated -> ray_quasar_tokens_generated_total
    quasar_errors           -> ray_quasar_errors_total
    quasar_step_latency_s   -> ray_quasar_step_latency_s_bucket / _sum / _count

infra/grafana/quasar-dashboard.json and docs/deploy.md use these names: rename together.
"""
from __future__ import annotations

STEP_LATENCY_BOUNDARIES = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


class StageMetrics:
    def __init__(self, *, mode: str, model: str) -> None:
        from ray.util.metrics import Counter, Histogram

        tags = ("mode", "model")
        self.tasks = Counter("quasar_tasks_completed", description="Tasks finished (errors included).", tag_keys=tags)
        self.errors = Counter("quasar_errors", description="Tasks finished with an error.", tag_keys=tags)
        self.tokens = Counter("quasar_tokens_generated", description="Tokens generated (probes excluded).", tag_keys=tags)
        self.step_latency = Histogram(
            "quasar_step_latency_s", description="Seconds per reasoning step (task latency / steps).",
            boundaries=STEP_LATENCY_BOUNDARIES, tag_keys=tags,
        )
        for metric in (self.tasks, self.errors, self.tokens, self.step_latency):
            metric.set_default_tags({"mode": mode, "model": model})

    def record(self, rows: list[dict]) -> None:
        self.tasks.inc(len(rows))
        num_errors = sum(r["error"] is not None for r in rows)
        if num_errors:
            self.errors.inc(num_errors)
        tokens = sum(r["generated_tokens"] for r in rows)
        if tokens:
            self.tokens.inc(tokens)
        for r in rows:
            if r["error"] is None and r["num_steps"]:
                self.step_latency.observe(r["latency_s"] / r["num_steps"])
