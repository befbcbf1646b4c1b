"""Package names that load on first use (PEP 562), so importing one light submodule of a package
does not import its heavy neighbours (torch costs ~2 s of CPU in every process that imports it:
the job's driver, its stage actors and Ray Data's read tasks never need it)."""
from __future__ import annotations

import importlib
import sys


def lazy_getattr(package: str, homes: dict[str, str]):
    """A module `__getattr__` for `package`: `homes` maps each public name to the submodule
    (relative, ".engine") that defines it. A name is imported on first access, then cached on
    the package (also over a same-named submodule the import just bound: engine.generate)."""

    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
