"""`quasar`: a thin CLI. Each command resolves its config and calls one function.

Failures print one line `quasar: error: <cause>` on stderr and exit non-zero.
"""
from __future__ import annotations

import re
import sys

import click


class CliError(click.ClickException):
    def show(self, file=None) -> None:
        click.echo(f"quasar: error: {self.format_message()}", err=True)


def _fail_cleanly(fn):
    """Turn the project's expected errors (bad config, bad input, bad model) into one line."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from quasar_dist.util.errors import UserFacingError

        try:
            return fn(*args, **kwargs)
        except UserFacingError as exc:
            raise CliError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quasar-dist")
def main() -> None:
    """quasar-dist: batch reasoning with temperature-guided language models (TTM + GSoT) on Ray."""


@main.command()
@click.option("--input", "input_path", default=None, help="Parquet file, folder or glob of tasks (default: shipped sample tasks).")
@click.option("--output", "output_dir", default=None, help="Output folder; re-running on it resumes (default: outputs/run).")
@click.option("--model", default=None, help="'tiny' (shipped) or a local Hugging Face model folder.")
@click.option("--ttm", default=None, help="A TTM adapter folder to attach to --model (temperatures for any checkpoint).")
@click.option("--mode", type=click.Choice(["gsot", "cot"]), default=None, help="Guided sequence of thought or the chain-of-thought baseline.")
@click.option("--config", "config_path", default=None, help="Run config YAML (see configs/runs/); flags override it.")
@click.option("--tp", type=int, default=None, help="Tensor-parallel ranks per replica (DeepSpeed AutoTP).")
@click.option("--replicas", type=int, default=None, help="Data-parallel model replicas.")
@click.option("--batch-size", type=int, default=None, help="Tasks per batch sent to a replica.")
@click.option("--limit", type=int, default=None, help="Process at most N input tasks.")
@click.option("--resume/--no-resume", default=None, help="Skip ids already in OUTPUT/results (default: resume).")
@click.option("--id-col", default=None, help="Column holding task ids (default: id; derived from the prompt hash when absent).")
@click.option("--prompt-col", default=None, help="Column holding prompts (default: prompt).")
@click.option("--answer-col", default=None, help="Column holding reference answers (default: answer).")
@click.option("--address", default=None, help="Ray address to join (default: start a local instance).")
@_fail_cleanly
def run(**options) -> None:
    """Stream a Parquet dataset of reasoning tasks through GSoT (or CoT) and report throughput."""
    from quasar_dist.batch.job import run_from_cli

    run_from_cli(**options)


@main.command()
@click.option("--quick", is_flag=True, help="Fewer tasks: a smoke run of every comparison.")
@click.option("--json", "json_path", default=None, help="Write the results JSON here.")
@_fail_cleanly
def bench(quick: bool, json_path: str | None) -> None:
    """Side-by-side benchmarks in one process: GSoT vs CoT, engine vs HF generate, guidance overhead."""
    from quasar_dist.bench.main import run_bench

    run_bench(quick=quick, json_path=json_path)


@main.command()
@click.argument("config_path")
@click.option("--output", "output_dir", default=None, help="Sweep folder (default: outputs/sweep).")
@_fail_cleanly
def sweep(config_path: str, output_dir: str | None) -> None:
    """Run an evaluation grid (models x modes x settings x datasets); resumable."""
    from quasar_dist.sweep.run import run_sweep_from_cli

    run_sweep_from_cli(config_path, output_dir)


@main.command()
@click.argument("config_path")
@_fail_cleanly
def train(config_path: str) -> None:
    """Train a temperature-guided model from a recipe (configs/train/*.yaml) with DeepSpeed."""
    from quasar_dist.train.trainer import train_from_config

    train_from_config(config_path)


@main.group()
def data() -> None:
    """Reasoning-task datasets."""


@data.command("make")
@click.option("--kind", required=True, help="arith, logic or mixed.")
@click.option("--n", "n", type=int, required=True, help="Number of tasks.")
@click.option("--seed", type=int, default=0, show_default=True, help="Generator seed.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--distractors", type=int, default=None,
              help="Mix exactly this many irrelevant sentences into each prompt and record relevant_spans "
                   "(default: today's tasks, 0-2 distractors, no spans).")
@click.option("--id-prefix", default="", help="Put this before every id (letters, digits, '.', '_', '-'), so that "
                                                "files made with other seeds or distractor counts can be read "
                                                "as one dataset (ids are KIND-SPLIT-INDEX, the same in every file).")
@click.option("--out", "out_path", required=True, help="Output Parquet file.")
@_fail_cleanly
def data_make(kind: str, n: int, seed: int, split: str, distractors: int | None, id_prefix: str, out_path: str) -> None:
    """Generate N tasks of KIND into a Parquet file (id, prompt, answer, solution, kind[, relevant_spans])."""
    from quasar_dist.data.tasks import make_tasks, write_tasks

    if not re.fullmatch(r"[A-Za-z0-9._-]*", id_prefix):
        raise CliError(f"--id-prefix may hold letters, digits, '.', '_' and '-' only, got {id_prefix!r}")
    try:
        rows = make_tasks(kind, n, seed, split=split, distractors=distractors)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    rows = [{**row, "id": id_prefix + row["id"]} for row in rows]
    write_tasks(rows, out_path)
    click.echo(f"wrote {len(rows)} {kind} tasks ({split}, seed {seed}) to {out_path}")


@main.command()
@click.argument("run_dir")
@_fail_cleanly
def report(run_dir: str) -> None:
    """Rebuild report.json, report.md and plots of a run folder from its results."""
    from quasar_dist.report.build import report_from_dir

    report_from_dir(run_dir)


@main.command("lm-eval", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                          "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def lm_eval_command(args: tuple[str, ...]) -> None:
    """lm-evaluation-harness's own CLI with the `quasar` model and the quasar_reasoning task
    registered, e.g. `quasar lm-eval run --model quasar --model_args model=tiny,mode=gsot
    --tasks quasar_reasoning`. Every argument goes to lm-eval unchanged."""
    from quasar_dist.integrations.lm_eval_cli import run_lm_eval

    run_lm_eval(list(args))


if __name__ == "__main__":
    sys.exit(main())
