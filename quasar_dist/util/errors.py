"""Errors that reach the user as one line (CLI: `quasar: error: ...`, exit code 1)."""
from __future__ import annotations

from quasar_dist.model.config import ModelLoadError
from quasar_dist.util.typed_config import ConfigError


class InputError(ValueError):
    """A dataset that cannot be read as tasks (missing file, not Parquet, missing column...)."""


class ResourceError(RuntimeError):
    """The cluster cannot provide what a run needs (e.g. a placement group times out)."""


UserFacingError = (ConfigError, ModelLoadError, InputError, ResourceError)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none): what a one-line
    error quotes of a library's multi-line message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
