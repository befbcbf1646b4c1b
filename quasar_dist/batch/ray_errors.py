"""Finding the project's one-line error inside what Ray raises.

A ConfigError/ModelLoadError/InputError/ResourceError raised in a replica reaches the driver
wrapped: as RayTaskError.cause, in a __cause__/__context__ chain, or - when it killed a Ray Data
actor in its constructor - only as text inside ActorDiedError's message. The CLI shows it as
`quasar: error: <cause>` instead of Ray's traceback.
"""
from __future__ import annotations

import re

from quasar_dist.model.config import ModelLoadError
from quasar_dist.util.errors import InputError, ResourceError, UserFacingError
from quasar_dist.util.typed_config import ConfigError

BY_NAME = {cls.__name__: cls for cls in (ConfigError, ModelLoadError, InputError, ResourceError)}
IN_TEXT = re.compile(r"\b(" + "|".join(BY_NAME) + r"): (.+)")


def user_facing_cause(exc: BaseException) -> BaseException | None:
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, UserFacingError):
            return e
    for e in chain:
        matches = IN_TEXT.findall(str(e))
        if matches:
            name, message = matches[-1]
            return BY_NAME[name](message.strip())
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen, order, todo = set(), [], [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        order.append(e)
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return [e for e in order if isinstance(e, BaseException)]
