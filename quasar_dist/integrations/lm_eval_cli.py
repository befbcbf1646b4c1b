"""`quasar lm-eval ARGS...`: lm-eval's CLI, in this process, after the `quasar` model is
registered. lm-eval has no plugin hook for models outside its package (its issues #1621 and
#3282), so the way in is to import our model first and then hand lm-eval its argv as typed.
The shipped task folder is added to --include_path, so `--tasks quasar_reasoning` resolves.
"""
from __future__ import annotations

import sys
from pathlib import Path

from quasar_dist.util.errors import ConfigError

TASKS_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"


def lm_eval_argv(args: list[str]) -> list[str]:
    """argv for lm-eval: ours unchanged, plus our task folder when no --include_path is given."""
    if any(a == "--include_path" or a.startswith("--include_path=") for a in args) or not args or args[0] in ("-h", "--help"):
        return ["lm-eval", *args]
    return ["lm-eval", *args, "--include_path", str(TASKS_DIR)]


def run_lm_eval(args: list[str]) -> None:
    try:
        from lm_eval.__main__ import cli_evaluate
    except ImportError:
        raise ConfigError("lm-eval is not installed; pip install 'quasar-dist[lm-eval]' (or lm-eval)") from None
    import quasar_dist.integrations.lm_eval  # noqa: F401  registers the `quasar` model

    saved = sys.argv
    sys.argv = lm_eval_argv(args)
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
