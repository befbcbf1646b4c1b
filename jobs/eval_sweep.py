"""`ray job submit` entry point of an evaluation sweep: the same as `quasar sweep CONFIG [--output DIR]`.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/eval_sweep.py --config configs/sweeps/small.yaml --output /shared/sweeps/small

Inside a Ray job, RAY_ADDRESS is set, so the sweep joins that cluster (run.address in the grid's
YAML overrides it) instead of starting a local instance. Give an absolute or shared --output: a
relative one lands in the job's uploaded working directory on the head node. Submitting the same
command again resumes: finished cells are skipped, the cell in flight resumes where it stopped.
"""
import sys
from pathlib import Path

# The uploaded working directory is the code to run (driver and workers alike), even when an
# older quasar_dist is installed on the cluster.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click  # noqa: E402  (after the path fix above)

from quasar_dist.cli import _fail_cleanly  # noqa: E402


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, help="Sweep grid YAML (configs/sweeps/*.yaml).")
@click.option("--output", "output_dir", default=None, help="Sweep folder (default: the YAML's output, else outputs/sweep).")
@_fail_cleanly
def main(config_path: str, output_dir: str | None) -> None:
    """Run an evaluation grid (models x modes x settings x datasets); resumable."""
    from quasar_dist.sweep.run import run_sweep_from_cli

    run_sweep_from_cli(config_path, output_dir)


if __name__ == "__main__":
    main(prog_name="eval_sweep.py")
