"""lossext.functional: the signatures of torch.nn.functional's losses, computed by lossext's kernels."""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor

from . import _specs  # noqa: F401  (registers fake kernels and autograd)
from ._common import grad_mask, reduction_enum

_ops = torch.ops.lossext

__all__ = [
    "binary_cross_entropy_with_logits",
    "l1_loss",
    "mse_loss",
    "huber_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
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


# --- l1_loss, mse_loss, huber_loss, smooth_l1_loss, soft_margin_loss --------------------------------

def _warn_if_broadcast(input: Tensor, target: Tensor) -> None:
    # torch's warning, attributed (stacklevel) to the caller of the functional. Not while dynamo
    # traces (warnings.warn would break a fullgraph compile; torch's compiled losses warn only
    # once, at trace time, anyway).
    if target.size() != input.size() and not torch.compiler.is_compiling():
        warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )


def _weighted_reduction(reduction: str, weight: Optional[Tensor], size_average=None, reduce=None) -> int:
    # With a weight torch's functionals check the string themselves, with their own message.
    if weight is not None and size_average is None and reduce is None and reduction not in ("none", "mean", "sum"):
        raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', 'sum'.")
    return reduction_enum(reduction, size_average, reduce)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[Tensor] = None,
) -> Tensor:
    _warn_if_broadcast(input, target)
    r = _weighted_reduction(reduction, weight, size_average, reduce)
    return _ops.l1_loss(input, target, weight, r, grad_mask(input, target, weight))[0]


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[Tensor] = None,
) -> Tensor:
    _warn_if_broadcast(input, target)
    r = _weighted_reduction(reduction, weight, size_average, reduce)
    return _ops.mse_loss(input, target, weight, r, grad_mask(input, target, weight))[0]


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Optional[Tensor] = None,
) -> Tensor:
    _warn_if_broadcast(input, target)
    r = _weighted_reduction(reduction, weight)
    return _ops.huber_loss(input, target, weight, r, float(delta), grad_mask(input, target, weight))[0]


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    _warn_if_broadcast(input, target)
    r = reduction_enum(reduction, size_average, reduce)
    return _ops.smooth_l1_loss(input, target, r, float(beta), grad_mask(input, target))[0]


def soft_margin_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    # Computed as softplus(-input * target): finite where torch's log1p(exp(.)) overflows to inf.
    r = reduction_enum(reduction, size_average, reduce)
    return _ops.soft_margin_loss(input, target, r, grad_mask(input, target))[0]
