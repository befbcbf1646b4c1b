"""Several projections of one input as one matmul (q/k/v; gate/up): fewer, larger GEMMs, which
is what decoding on a CPU (and kernel launches on a GPU) is bound by.

The modules stay as they are (checkpoints, AutoTP and training see plain `nn.Linear`s); the
concatenated weight is a cache, rebuilt whenever a source weight is replaced or changed in place
(its `_version`). Used only without autograd, and only for plain `nn.Linear`s: a module that
DeepSpeed replaced (a tensor-parallel shard) runs on its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attribute(obj, name: str):
    """getattr, without nn.Module.__getattr__'s slow path for submodules and parameters (they
    live in the module's dicts): these caches check their sources at every forward."""
    if isinstance(obj, nn.Module):
        stores = obj.__dict__
        for store in (stores["_modules"], stores["_parameters"]):
            if name in store:  # a parameter may be None (a Linear without bias)
                return store[name]
    return getattr(obj, name)


class FusedProjections:
    """The projections are attribute paths of `owner` ("self_attn.q_proj", or "ttm.A" for a bare
    weight Parameter [out, in]), looked up at every call: DeepSpeed AutoTP replaces a layer's
    Linears after the model is built, and a replaced one must not be fused. (Paths, not
    closures: a deep copy of the model then fuses the copy's weights.)"""

    def __init__(self, owner: nn.Module, paths: tuple[str, ...]) -> None:
        self._owner = owner
        self._paths = paths
        self._key = None
        self._weight = self._bias = None

    @property
    def _linears(self) -> list:
        found = []
        for path in self._paths:
            obj = self._owner
            for name in path.split("."):
                obj = attribute(obj, name)
            found.append(obj if isinstance(obj, nn.Module) else _BareWeight(obj))
        return found

    def usable(self) -> bool:
        return not torch.is_grad_enabled() and all(type(m) in (nn.Linear, _BareWeight) for m in self._linears)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The projections of x, in the order given, as views of one output."""
        return list(self.joint(x).split([m.out_features for m in self._linears], dim=-1))

    def joint(self, x: torch.Tensor) -> torch.Tensor:
        """All projections side by side in the last dimension: [..., sum of out_features]."""
        weight, bias = self._weights()
        return F.linear(x, weight, bias)

    def _weights(self):
        weights = [(attribute(m, "weight"), attribute(m, "bias")) for m in self._linears]
        key = tuple((w.data_ptr(), w._version, None if b is None else (b.data_ptr(), b._version)) for w, b in weights)
        if key != self._key:
            self._weight = torch.cat([w for w, _ in weights])
            biases = [b if b is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device) for w, b in weights]
            self._bias = torch.cat(biases) if any(b is not None for _, b in weights) else None
            self._key = key
        return self._weight, self._bias


class _BareWeight:
    """A weight Parameter seen as a bias-free Linear (plain attribute access, no module)."""

    def __init__(self, weight: nn.Parameter) -> None:
        self._weight = weight
        self.bias = None

    @property
    def weight(self) -> torch.Tensor:
        return self._weight

    @property
    def out_features(self) -> int:
        return self._weight.shape[0]
