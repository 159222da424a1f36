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
    "BCELoss",
    "MultiLabelSoftMarginLoss",
]


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    __doc__ = torch.nn.BCEWithLogitsLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction)


class BCELoss(torch.nn.BCELoss):
    __doc__ = torch.nn.BCELoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class MultiLabelSoftMarginLoss(torch.nn.MultiLabelSoftMarginLoss):
    __doc__ = torch.nn.MultiLabelSoftMarginLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)
