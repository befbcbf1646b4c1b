"""quasar-dist: distributed batch reasoning with temperature-guided language models."""
from .model import load_model

__version__ = "0.1.0"


def __getattr__(name):  # Reasoner pulls in the engine, the processor Ray: import them only when asked for
    if name == "Reasoner":
        from .reasoning.reasoner import Reasoner

        return Reasoner
    if name in ("build_processor", "ProcessorConfig"):
        from .batch import processor, processor_config

        return getattr(processor if name == "build_processor" else processor_config, name)
    raise AttributeError(name)


__all__ = ["load_model", "Reasoner", "build_processor", "ProcessorConfig", "__version__"]
