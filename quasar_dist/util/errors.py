"""Errors that reach the user as one line (CLI: `quasar: error: ...`, exit code 1)."""
from __future__ import annotations

from quasar_dist.model.config import ModelLoadError
from quasar_dist.util.typed_config import ConfigError


class InputError(ValueError):
    """A dataset that cannot be read as tasks (missing file, not Parquet, missing column...)."""


class ResourceError(RuntimeError):
    """The cluster cannot provide what a run needs (e.g. a placement group times out)."""


UserFacingError = (ConfigError, ModelLoadError, InputError, ResourceError)
