"""report.md: the report as a readable summary table."""
from __future__ import annotations


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return text + unit
    return f"{value}{unit}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def report_markdown(report: dict, plots: list[str]) -> str:
    cache = report["temperature_cache"]
    rows = [
        ("model / mode", f"{report['model']} / {report['mode']}"),
        ("replicas x tp", f"{report['replicas']} x {report['tp']}"),
        ("tasks (completed / errors)", f"{report['tasks']} ({report['completed']} / {report['errors']})"),
        ("resumed (skipped by the last run)", _fmt(report.get("skipped_resumed"))),
        ("accuracy", _pct(report["accuracy"])),
        ("wall time", _fmt(report["wall_s"], " s")),
        ("first result after (start-up + first batch, last run)", _fmt(report.get("first_result_s"), " s")),
        ("tasks/s", _fmt(report["tasks_per_s"])),
        ("generated tokens/s", _fmt(report["generated_tokens_per_s"])),
        ("prompt tokens/s", _fmt(report["prompt_tokens_per_s"])),
        ("mean steps / task", _fmt(report["mean_steps"])),
        ("mean generated tokens / task", _fmt(report["mean_generated_tokens"])),
        ("attended KV / task", _fmt(report["attended_kv_per_task"])),
        ("FLOPs / task", "n/a" if report["flops_per_task"] is None else f"{report['flops_per_task']:.3e}"),
        ("latency p50 / p95", f"{_fmt(report['latency_s']['p50'], ' s')} / {_fmt(report['latency_s']['p95'], ' s')}"),
        ("temperature cache hits / misses (hit rate)", f"{cache['hits']} / {cache['misses']} ({_pct(cache['hit_rate'])})"),
        ("KV evicted", _pct(report["kv_evicted_fraction"])),
    ]
    lines = ["# quasar run report", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    if report.get("accuracy_by_kind"):
        lines += ["", "| kind | accuracy |", "| --- | --- |"]
        lines += [f"| {kind} | {_pct(acc)} |" for kind, acc in report["accuracy_by_kind"].items()]
    if report.get("stop_reasons"):
        lines += ["", "| stop reason | tasks |", "| --- | --- |"]
        lines += [f"| {reason} | {count} |" for reason, count in report["stop_reasons"].items()]
    lines += ["", "Rates are over the wall time of the runs that computed the results (see docs/batch.md)."]
    if plots:
        lines += [""] + [f"![{p}](plots/{p})" for p in plots]
    return "\n".join(lines) + "\n"
