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
    "cross_entropy",
    "nll_loss",
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


# ---- cross_entropy, nll_loss -----------------------------------------------------------------------
from ._registry import _is_plain_cpu  # noqa: E402

_INPLACE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _inplace_usable(input: Tensor, target: Tensor, weight: Optional[Tensor]) -> bool:
    """Whether the in-place gradient path applies: a contiguous floating input that requires grad,
    a target that does not, and no dtype promotion (probability targets of another dtype)."""
    if not (torch.is_grad_enabled() and input.requires_grad and input.dtype in _INPLACE_DTYPES
            and input.is_contiguous() and not target.requires_grad
            and (weight is None or not weight.requires_grad)):
        return False
    if input.shape == target.shape and target.is_floating_point():
        return target.dtype == input.dtype and (weight is None or weight.dtype == input.dtype)
    return True


class _CrossEntropyInplace(torch.autograd.Function):
    """cross_entropy whose forward writes d loss / d input over the input's own memory (no gradient
    buffer is allocated); the backward scales it by grad_output in place and hands that memory to
    autograd. The logits are overwritten, and the backward can run once."""

    @staticmethod
    def forward(ctx, input, target, weight, reduction, ignore_index, label_smoothing):
        loss = _ops.cross_entropy_inplace(input, target, weight, reduction, ignore_index, label_smoothing)
        # The logits changed: bump their version so that any other node that saved them raises
        # "modified by an inplace operation" in its backward instead of using the gradient as logits.
        torch.autograd.graph.increment_version(input)
        # A detached alias, not save_for_backward: a saved reference would make AccumulateGrad copy
        # the 0.5 GB gradient of a leaf instead of adopting it.
        ctx.grad = input.detach()
        ctx.reduction = reduction
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad = ctx.grad
        if grad is None:
            raise RuntimeError(
                "cross_entropy(inplace_backward=True): the backward can run only once; the gradient was "
                "written over the logits and already handed to autograd")
        ctx.grad = None
        if not (ctx.reduction != 0 and _is_plain_cpu(grad_loss) and grad_loss.item() == 1.0):
            _ops.cross_entropy_inplace_backward(grad, grad_loss, ctx.reduction)
        return grad, None, None, None, None, None


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    inplace_backward: bool = False,
) -> Tensor:
    """torch.nn.functional.cross_entropy, computed by lossext's kernels.

    inplace_backward=True (lossext only): the forward writes the gradient with respect to `input`
    over `input` itself (no second logits-sized buffer), and the backward returns that memory as the
    gradient. `input` is overwritten (its values are gone after the call) and the backward can run
    once. It applies when `input` is a contiguous floating tensor that requires grad (and the
    target does not); otherwise the ordinary path runs. Works under torch.compile.
    """
    r = reduction_enum(reduction, size_average, reduce)
    if inplace_backward and _inplace_usable(input, target, weight):
        return _CrossEntropyInplace.apply(input, target, weight, r, ignore_index, float(label_smoothing))
    return _ops.cross_entropy(input, target, weight, r, ignore_index, float(label_smoothing),
                              grad_mask(input, target))[0]


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    size_average: Optional[bool] = None,
    ignore_index: int = -100,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    r = reduction_enum(reduction, size_average, reduce)
    return _ops.nll_loss(input, target, weight, r, ignore_index, grad_mask(input))[0]
