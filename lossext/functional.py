"""lossext.functional: the signatures of torch.nn.functional's losses, computed by lossext's kernels."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import _specs  # noqa: F401  (registers fake kernels and autograd)
from ._common import grad_mask, reduction_enum

_ops = torch.ops.lossext

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "multilabel_soft_margin_loss",
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
    return _ops.binary_cross_entropy_with_logits(
        input, target, weight, pos_weight, r, grad_mask(input, target))[0]


def _check_weight_not_differentiable(name: str, weight: Optional[Tensor]) -> None:
    if weight is not None and weight.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"The function '{name}' is not differentiable with respect to argument 'weight'. "
                           "This input cannot have requires_grad True.")


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """torch.nn.functional.binary_cross_entropy. CPU: inputs or targets outside [0, 1] (or NaN) raise
    RuntimeError, as torch. CUDA (no host sync; torch asserts on the device): such elements give a
    NaN loss and NaN gradients instead."""
    r = reduction_enum(reduction, size_average, reduce)
    if target.size() != input.size():
        raise ValueError(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}) is "
            "deprecated. Please ensure they have the same size.")
    _check_weight_not_differentiable("binary_cross_entropy", weight)
    return _ops.binary_cross_entropy(input, target, weight, r, grad_mask(input, target))[0]


def multilabel_soft_margin_loss(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """torch.nn.functional.multilabel_soft_margin_loss, by one fused kernel. Unlike torch's composite,
    `weight` is not differentiable here (RuntimeError if it requires grad), and target/weight must
    broadcast to the input's shape."""
    if size_average is not None or reduce is not None:
        reduction = torch.nn._reduction.legacy_get_string(size_average, reduce)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    r = reduction_enum(reduction)
    _check_weight_not_differentiable("multilabel_soft_margin_loss", weight)
    return _ops.multilabel_soft_margin_loss(input, target, weight, r, grad_mask(input, target))[0]
