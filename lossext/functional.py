"""lossext.functional: the signatures of torch.nn.functional's losses, computed by lossext's kernels."""
from __future__ import annotations

import warnings
from typing import Optional, Union

import torch
from torch import Tensor

from . import _specs  # noqa: F401  (registers fake kernels and autograd)
from ._common import INVALID, NOT_VALID, WEIGHTED_INVALID, check_weight_not_differentiable, reduction_enum
from ._registry import CALLS as _loss  # name -> the op's call: (*args) -> loss

_ops = torch.ops.lossext

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "l1_loss",
    "mse_loss",
    "huber_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "poisson_nll_loss",
    "gaussian_nll_loss",
    "kl_div",
    "cross_entropy",
    "nll_loss",
    "multilabel_soft_margin_loss",
    "margin_ranking_loss",
    "hinge_embedding_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "cosine_embedding_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "linear_cross_entropy",
    "sigmoid_focal_loss",
    "focal_loss",
    "ctc_loss",
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
    return _loss["binary_cross_entropy_with_logits"](input, target, weight, pos_weight, r, None)


# ---- poisson_nll_loss, gaussian_nll_loss, kl_div ----------------------------------------------

def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average: Optional[bool] = None,
    eps: float = 1e-8,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    r = reduction_enum(reduction, size_average, reduce)
    return _loss["poisson_nll_loss"](input, target, log_input, full, eps, r, None)


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Union[Tensor, float],
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    # The var checks (negative entries, shape) and the float var are handled by the op itself.
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var_tensor, var_value = None, var
    elif isinstance(var, Tensor):
        var_tensor, var_value = var, 1.0
    else:  # torch fails in torch.any(var < 0) the same way
        raise TypeError(f"gaussian_nll_loss(): var must be a Tensor or a float, but got {type(var).__name__}")
    r = reduction_enum(reduction, invalid=NOT_VALID)
    return _loss["gaussian_nll_loss"](input, target, var_tensor, var_value, full, eps, r, None)


_KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


def kl_div(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    legacy = size_average is not None or reduce is not None
    if not legacy and reduction == "mean" and not torch.compiler.is_compiling():  # dynamo cannot trace warn()
        warnings.warn(_KL_MEAN_WARNING, stacklevel=2)
    r = reduction_enum("sum" if reduction == "batchmean" else reduction, size_average, reduce)
    # As torch, the string 'batchmean' divides by input.size(0) even after a legacy reduction; the
    # op folds the division into the same pass.
    return _loss["kl_div"](input, target, r, log_target, reduction == "batchmean", None)


# --- l1_loss, mse_loss, huber_loss, smooth_l1_loss, soft_margin_loss --------------------------------

def _warn_if_broadcast(input: Tensor, target: Tensor, stacklevel: int = 3) -> None:
    # torch's warning, attributed (stacklevel) to the caller of the functional. Not while dynamo
    # traces (warnings.warn would break a fullgraph compile; torch's compiled losses warn only
    # once, at trace time, anyway).
    if target.size() != input.size() and not torch.compiler.is_compiling():
        warnings.warn(
            f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
            "This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=stacklevel,
        )


def _weighted_reduction(reduction: str, weight: Optional[Tensor], size_average=None, reduce=None) -> int:
    # With a weight torch's functionals check the string themselves, with their own message.
    return reduction_enum(reduction, size_average, reduce, invalid=WEIGHTED_INVALID if weight is not None else INVALID)


def _weighted_pair(name: str, input: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                   size_average, reduce) -> Tensor:
    """l1_loss and mse_loss: the broadcast warning, torch's reduction rules with a weight, the op."""
    _warn_if_broadcast(input, target, stacklevel=4)
    r = _weighted_reduction(reduction, weight, size_average, reduce)
    return _loss[name](input, target, weight, r, None)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[Tensor] = None,
) -> Tensor:
    return _weighted_pair("l1_loss", input, target, weight, reduction, size_average, reduce)


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
    weight: Optional[Tensor] = None,
) -> Tensor:
    return _weighted_pair("mse_loss", input, target, weight, reduction, size_average, reduce)


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Optional[Tensor] = None,
) -> Tensor:
    _warn_if_broadcast(input, target)
    r = _weighted_reduction(reduction, weight)
    return _loss["huber_loss"](input, target, weight, r, float(delta), None)


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
    return _loss["smooth_l1_loss"](input, target, r, float(beta), None)


def soft_margin_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    # Computed as softplus(-input * target): finite where torch's log1p(exp(.)) overflows to inf.
    r = reduction_enum(reduction, size_average, reduce)
    return _loss["soft_margin_loss"](input, target, r, None)


# ---- cross_entropy, nll_loss -----------------------------------------------------------------------
_INPLACE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _inplace_usable(input: Tensor, target: Tensor, weight: Optional[Tensor]) -> bool:
    """Whether the in-place gradient path applies: a contiguous floating input that requires grad,
    a target that does not, and no dtype promotion (probability targets of another dtype)."""
    if input.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(input.device.type):
        return False  # autocast computes in float32: a float32 copy, not the caller's logits
    if not (torch.is_grad_enabled() and input.requires_grad and input.dtype in _INPLACE_DTYPES
            and input.is_contiguous() and not target.requires_grad
            and (weight is None or not weight.requires_grad)):
        return False
    if input.shape == target.shape and target.is_floating_point():
        return target.dtype == input.dtype and (weight is None or weight.dtype == input.dtype)
    return True


def _is_plain_cpu(t: Tensor) -> bool:
    """A real CPU tensor in eager mode, whose value may be read without tracing it."""
    return (type(t) is torch.Tensor and t.is_cpu and not torch.compiler.is_compiling()
            and torch._C._len_torch_dispatch_stack() == 0 and not torch._C._are_functorch_transforms_active())


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
    @torch.autograd.function.once_differentiable  # the logits are gone: no second derivative
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
    check_weight_not_differentiable("cross_entropy", weight)
    if inplace_backward and _inplace_usable(input, target, weight):
        return _CrossEntropyInplace.apply(input, target, weight, r, ignore_index, float(label_smoothing))
    return _loss["cross_entropy"](input, target, weight, r, ignore_index, float(label_smoothing), None)


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
    check_weight_not_differentiable("nll_loss", weight)
    # On CUDA the gradient is written in the backward only: it is one scattered value per sample,
    # as cheap to write there (zeros + scatter, already times grad_output) as in the forward, and a
    # forward-written one would cost a second full pass to scale (measured 3x slower on an H100).
    # On the CPU the backward skips that scale when grad_output is 1 (loss.backward()), so for
    # small inputs the forward writes it and the backward has no op to run (half the call overhead
    # at N=64); large ones keep the one-pass backward, which also covers grad_output != 1.
    mask = None if input.is_cpu and input.numel() <= (1 << 20) else [False]  # None: input's
    return _loss["nll_loss"](input, target, weight, r, ignore_index, mask)


# ---- binary_cross_entropy, multilabel_soft_margin_loss -------------------------------------------
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
    check_weight_not_differentiable("binary_cross_entropy", weight)
    return _loss["binary_cross_entropy"](input, target, weight, r, None)


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
    r = reduction_enum(reduction, size_average, reduce, invalid=NOT_VALID)
    check_weight_not_differentiable("multilabel_soft_margin_loss", weight)
    return _loss["multilabel_soft_margin_loss"](input, target, weight, r, None)


# The margin and embedding losses live in _functional_margin.py (this file stays one screenful per family).
from ._functional_margin import (  # noqa: E402,F401
    margin_ranking_loss,
    hinge_embedding_loss,
    multi_margin_loss,
    multilabel_margin_loss,
    cosine_embedding_loss,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from ._functional_linear_ce import linear_cross_entropy  # noqa: E402,F401
# The focal losses live in _functional_focal.py.
from ._functional_focal import focal_loss, sigmoid_focal_loss  # noqa: E402,F401
from ._functional_ctc import ctc_loss  # noqa: E402,F401
