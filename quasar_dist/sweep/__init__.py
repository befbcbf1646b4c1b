"""Evaluation sweeps: a grid of models x datasets x modes x GSoT settings, each cell a resumable
`quasar run` into DIR/cells/<cell-id>/, one model load per model for the whole grid, one row per
finished cell in DIR/sweep.parquet, and DIR/sweep.md with plots. See docs/sweeps.md."""
from .config import SweepConfig, load_sweep_config

__all__ = ["SweepConfig", "load_sweep_config", "run_sweep", "run_sweep_from_cli"]


def __getattr__(name):  # the run pulls in Ray and the batch job; import it when asked for
    if name in ("run_sweep", "run_sweep_from_cli"):
        from . import run

        return getattr(run, name)
    raise AttributeError(name)
