"""lossext.nn: drop-in subclasses of torch.nn's loss modules.

Each class *is* its torch counterpart (same constructor, attributes, buffers, state_dict and repr;
isinstance checks keep working); only forward runs lossext's kernels.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import functional as F

__all__ = [
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "NLLLoss",
]


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    __doc__ = torch.nn.BCEWithLogitsLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    __doc__ = torch.nn.CrossEntropyLoss.__doc__

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0, *, inplace_backward: bool = False) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        # lossext only: write the gradient over the logits (see lossext.functional.cross_entropy).
        self.inplace_backward = inplace_backward

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing,
                               inplace_backward=self.inplace_backward)


class NLLLoss(torch.nn.NLLLoss):
    __doc__ = torch.nn.NLLLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)
