"""quasar-dist: distributed batch reasoning with temperature-guided language models.

The names below load on first use: the job's driver, its stage actors and Ray Data's read tasks
import submodules of this package that need neither torch nor the model, and importing torch
costs ~2 s of CPU in every such process (docs/benchmarks.md, start-up)."""

__version__ = "0.1.0"


def __getattr__(name):  # the model pulls in torch, Reasoner the engine, the processor Ray
    if name == "load_model":
        from .model import load_model

        return load_model
    if name == "Reasoner":
        from .reasoning.reasoner import Reasoner

        return Reasoner
    if name in ("build_processor", "ProcessorConfig"):
        from .batch import processor, processor_config

        return getattr(processor if name == "build_processor" else processor_config, name)
    raise AttributeError(name)


__all__ = ["load_model", "Reasoner", "build_processor", "ProcessorConfig", "__version__"]
