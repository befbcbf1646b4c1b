"""The shipped sample task file, quasar_dist/assets/sample_tasks.parquet.

Why ship it: smoke runs and the engine's tests need a fixed task set without generating one,
and a test compares it with make_tasks so generator drift is caught.
Regenerate with `python -m quasar_dist.data.sample_asset`.
"""
from __future__ import annotations

from pathlib import Path

from quasar_dist.data.tasks import make_tasks, write_tasks

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "sample_tasks.parquet"
SAMPLE_SEED = 1234
SAMPLE_SIZE = 64  # 32 arith + 32 logic, interleaved


def make_sample() -> list[dict]:
    """The 64 test-split tasks stored in the sample file."""
    return make_tasks("mixed", SAMPLE_SIZE, SAMPLE_SEED, split="test")


def main() -> None:
    print(write_tasks(make_sample(), SAMPLE_PATH))


if __name__ == "__main__":
    main()
