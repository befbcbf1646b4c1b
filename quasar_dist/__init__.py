"""quasar-dist: distributed batch reasoning with temperature-guided language models."""
from .model import load_model

__version__ = "0.1.0"


def __getattr__(name):  # Reasoner pulls in the engine; import it only when asked for
    if name == "Reasoner":
        from .reasoning.reasoner import Reasoner

        return Reasoner
    raise AttributeError(name)


__all__ = ["load_model", "Reasoner", "__version__"]
