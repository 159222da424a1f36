"""lossext.functional: the signatures of torch.nn.functional's losses, computed by lossext's kernels."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import _specs  # noqa: F401  (registers fake kernels and autograd)
from ._common import grad_mask, reduction_enum
from ._registry import call as _call

_ops = torch.ops.lossext

__all__ = [
    "binary_cross_entropy_with_logits",
]


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    pos_weight: Optional[Tensor] = None,
) -> Tensor:
    r = reduction_enum(reduction, size_average, reduce)
    if not (target.size() == input.size()):
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    return _call("binary_cross_entropy_with_logits",
                 input, target, weight, pos_weight, r, grad_mask(input, target))[0]
