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


class FusedProjections:
    def __init__(self, *linears: nn.Linear) -> None:
        self._linears = linears
        self._key = None
        self._weight = self._bias = None

    def usable(self) -> bool:
        return not torch.is_grad_enabled() and all(type(m) is nn.Linear for m in self._linears)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The projections of x, in the order given, as views of one output."""
        return list(self.joint(x).split([m.out_features for m in self._linears], dim=-1))

    def joint(self, x: torch.Tensor) -> torch.Tensor:
        """All projections side by side in the last dimension: [..., sum of out_features]."""
        weight, bias = self._weights()
        return F.linear(x, weight, bias)

    def _weights(self):
        key = tuple((m.weight.data_ptr(), m.weight._version, None if m.bias is None else (m.bias.data_ptr(), m.bias._version))
                    for m in self._linears)
        if key != self._key:
            self._weight = torch.cat([m.weight for m in self._linears])
            biases = [m.bias if m.bias is not None else torch.zeros(m.out_features, dtype=m.weight.dtype, device=m.weight.device)
                      for m in self._linears]
            self._bias = torch.cat(biases) if any(m.bias is not None for m in self._linears) else None
            self._key = key
        return self._weight, self._bias
