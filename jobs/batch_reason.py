"""`ray job submit` entry point of the batch job: the same options as `quasar run`.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/batch_reason.py --config configs/runs/sample.yaml --output /shared/runs/sample

Inside a Ray job, RAY_ADDRESS is set, so the run joins that cluster instead of starting a local
instance. Relative --output paths land in the job's working directory on the head node (the
uploaded copy); give an absolute or shared path to keep the results.
"""
import sys
from pathlib import Path

# The uploaded working directory is the code to run (driver and workers alike), even when an
# older quasar_dist is installed on the cluster.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quasar_dist.cli import main  # noqa: E402  (after the path fix above)

if __name__ == "__main__":
    main(["run", *sys.argv[1:]], prog_name="batch_reason.py")
