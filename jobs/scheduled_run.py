"""The scheduled daily batch run (infra/k8s/raycronjob.yaml), also for backfills by hand:

    python jobs/scheduled_run.py --config configs/runs/daily.yaml [--date YYYY-MM-DD] [--output DIR]

It is `quasar run --config CONFIG` into DIR/date=YYYY-MM-DD/ (DIR: --output, else the config's
`output`), with resume forced on, so it is idempotent: a rerun for the same day (a retried
RayJob, a second tick, a backfill run twice) resumes that day's folder, and a finished day
recomputes nothing. `--date` picks the day (backfills); without it, today in UTC (the RayCronJob
fires at 02:00 Etc/UTC). A date must be a real YYYY-MM-DD day, not in the future.

`{date}` in the config's `input` is replaced by the day, for inputs partitioned by day, e.g.
`input: /mnt/quasar/inputs/date={date}/`.
"""
from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

# The uploaded working directory is the code to run (driver and workers alike), even when an
# older quasar_dist is installed on the cluster.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click  # noqa: E402  (after the path fix above)

from quasar_dist.cli import _fail_cleanly  # noqa: E402
from quasar_dist.util.typed_config import ConfigError  # noqa: E402

DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")
DATE_PLACEHOLDER = "{date}"


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def run_date(text: str | None, today: dt.date | None = None) -> dt.date:
    """The run's day: `text` checked (YYYY-MM-DD, a real day, not after `today`), or `today`."""
    today = today or today_utc()
    if text is None:
        return today
    if not DATE_FORMAT.fullmatch(text):
        raise ConfigError(f"--date {text!r}: expected YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--date {text}: {exc}") from None
    if day > today:
        raise ConfigError(f"--date {text} is in the future (today is {today.isoformat()} UTC)")
    return day


def dated_output(base: str, day: dt.date) -> str:
    from quasar_dist.batch.uri import is_uri, join

    if is_uri(base):  # Path() would fold s3://bucket into s3:/bucket
        return join(base, f"date={day.isoformat()}")
    return str(Path(base) / f"date={day.isoformat()}")


def scheduled_overrides(config_path: str, day: dt.date, output_dir: str | None) -> dict:
    """The RunConfig fields the schedule sets: the day's folder, the day's input, resume on."""
    from quasar_dist.batch.resolve import resolve_run_config

    base = resolve_run_config(config_path)
    overrides = {"output": dated_output(output_dir or base.output, day), "resume": True}
    if base.input and DATE_PLACEHOLDER in base.input:
        overrides["input"] = base.input.replace(DATE_PLACEHOLDER, day.isoformat())
    return overrides


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, help="Run config YAML (configs/runs/daily.yaml).")
@click.option("--date", "date_text", default=None, help="Day to run, YYYY-MM-DD (backfills); default: today, UTC.")
@click.option("--output", "output_dir", default=None, help="Folder of the daily runs; this day's is DIR/date=YYYY-MM-DD.")
@_fail_cleanly
def main(config_path: str, date_text: str | None, output_dir: str | None) -> None:
    """Run the day's batch job into DIR/date=YYYY-MM-DD/, resuming whatever that day already has."""
    from quasar_dist.batch.job import run_batch
    from quasar_dist.batch.resolve import resolve_run_config

    day = run_date(date_text)
    cfg = resolve_run_config(config_path, scheduled_overrides(config_path, day, output_dir))
    click.echo(f"scheduled run for {day.isoformat()}: {cfg.output}")
    run_batch(cfg)


if __name__ == "__main__":
    main(prog_name="scheduled_run.py")
