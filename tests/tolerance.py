"""Numeric tolerances derived from the dtype and the depth of a computation, never from what one
CPU happened to give (issue #12: a bound of 1e-6 held on an Intel CPU and failed on an AMD one).

Two computations that are equal in exact arithmetic (the same logits with other later tokens, an
incremental decode against a full forward, two implementations of one formula) still differ by
rounding: each operation adds at most eps relative error, and a reduction over `width` terms done
in another order (another BLAS kernel, another blocking, a padded batch) differs by about
sqrt(width) * eps of its magnitude (random-walk estimate; the worst case is width * eps). Such
errors add up over `depth` stacked layers. So

    bound = SAFETY * eps(dtype) * magnitude * depth * sqrt(width)

SAFETY = 16 leaves room for the worst cases seen (the AMD failure, 1.7e-6, is ~0.013 of this bound for the
test models) while a
real defect (a causality leak, a wrong formula) is orders of magnitude above it, and in float64 its
bound is ~1e-13: running a check in both dtypes tells rounding (shrinks with eps) from a defect
(does not).
"""
from __future__ import annotations

import math

import torch

SAFETY = 16


def rounding_bound(dtype: torch.dtype, *, magnitude: float, depth: int, width: int) -> float:
    """Largest difference rounding alone can explain (see the module docstring)."""
    return SAFETY * torch.finfo(dtype).eps * max(magnitude, 1.0) * depth * math.sqrt(width)


def model_bound(model, reference: torch.Tensor) -> float:
    """The bound for a quantity computed through the whole decoder (`reference` sets its size)."""
    cfg = model.config
    return rounding_bound(reference.dtype, magnitude=float(reference.abs().max()),
                          depth=cfg.num_layers + 1, width=max(cfg.hidden_size, cfg.intermediate_size))
