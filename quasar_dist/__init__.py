"""quasar-dist: distributed batch reasoning with temperature-guided language models.

The names below load on first use: the job's driver, its stage actors and Ray Data's read tasks
import submodules of this package that need neither torch nor the model, and importing torch
costs ~2 s of CPU in every such process (docs/benchmarks.md, start-up)."""
from __future__ import annotations

from quasar_dist.util.lazy_names import lazy_getattr

__version__ = "0.1.0"

_HOMES = {"load_model": ".model", "Reasoner": ".reasoning.reasoner", "build_processor": ".batch.processor",
          "ProcessorConfig": ".batch.processor_config"}

__getattr__ = lazy_getattr(__name__, _HOMES)

__all__ = ["load_model", "Reasoner", "build_processor", "ProcessorConfig", "__version__"]
