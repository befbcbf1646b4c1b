"""Reasoning loops above the engine: GSoT (guided sequence of thought) and the CoT baseline."""
from .config import ReasoningConfig
from .solve import solve_prompts

__all__ = ["Reasoner", "ReasoningConfig", "solve_prompts"]


def __getattr__(name):  # Reasoner imports model loading; keep `import quasar_dist.reasoning` light
    if name == "Reasoner":
        from .reasoner import Reasoner

        return Reasoner
    raise AttributeError(name)
