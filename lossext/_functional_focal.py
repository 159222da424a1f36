"""The focal losses of lossext.functional (re-exported there): sigmoid_focal_loss (torchvision's
semantics) and focal_loss (the softmax form, cross_entropy's conventions)."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from ._common import check_weight_not_differentiable
from ._registry import CALLS as _loss  # name -> the op's call: (*args) -> loss

_RED = {"none": 0, "mean": 1, "sum": 2}


def _check_normalizer(name: str, normalizer) -> None:
    if normalizer is None:
        return
    if not isinstance(normalizer, Tensor):
        raise TypeError(f"{name}: normalizer must be a Tensor (a one-element tensor, e.g. the number of "
                        f"positives), got {type(normalizer).__name__}")
    if normalizer.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"The function '{name}' is not differentiable with respect to argument 'normalizer'. "
                           "This input cannot have requires_grad True.")


def sigmoid_focal_loss(
    inputs: Tensor,
    targets: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
    *,
    weight: Optional[Tensor] = None,
    normalizer: Optional[Tensor] = None,
    ignore_index: int = -100,
) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss, computed in one native pass (value and gradient):
    loss = a_t (1 - p_t)^gamma BCE_with_logits(inputs, targets), p = sigmoid(inputs),
    p_t = p t + (1 - p)(1 - t), a_t = alpha t + (1 - alpha)(1 - t) (no weighting for alpha < 0).

    Float targets of the inputs' shape: torchvision's semantics exactly ('mean' averages over every
    element; targets are differentiable, as in torchvision's composite).

    Class-index targets (an int64 tensor of shape inputs.shape[:-1], or (N, d1..dk) for an
    (N, C, d1..dk) input: class dim 1; the last dim wins where both shapes match): the loss of the
    one-hot of each index, computed without a one-hot tensor. Index C is background (all
    negatives), `ignore_index` rows contribute nothing, 'mean' divides by the number of elements of
    the rows kept (rows x C; NaN when every row is ignored, with a zero gradient as cross_entropy's). CPU: an index outside [0, C] raises
    IndexError; CUDA (no host sync): that row's loss and gradient are NaN.

    Keyword-only (lossext): `weight`, not differentiable: a per-class (C,) weight (for float targets,
    any weight that broadcasts to the inputs); `normalizer`, a one-element tensor (e.g. the number of
    positives, on the device) the loss is divided by on the device, without a host sync: the reduced
    loss for 'mean'/'sum', every element for 'none'. It is not differentiable (raises if it
    requires grad). `ignore_index` applies to class-index targets only."""
    r = _RED.get(reduction)
    if r is None:  # torchvision's error and message
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n "
                         "Supported reduction modes: 'none', 'mean', 'sum'")
    if gamma < 0:
        raise ValueError(f"sigmoid_focal_loss: gamma must be >= 0, got {gamma}")
    check_weight_not_differentiable("sigmoid_focal_loss", weight)
    _check_normalizer("sigmoid_focal_loss", normalizer)
    if not targets.is_floating_point():
        return _loss["sigmoid_focal_loss_index"](inputs, targets, weight, normalizer, float(alpha), float(gamma), r,
                                                 int(ignore_index), None)
    return _loss["sigmoid_focal_loss"](inputs, targets, weight, normalizer, float(alpha), float(gamma), r, None)


def focal_loss(
    input: Tensor,
    target: Tensor,
    alpha: Optional[Union[float, Tensor]] = None,
    gamma: float = 2.0,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """The softmax focal loss with cross_entropy's conventions: per sample
    -w_t a_t (1 - p_t)^gamma log p_t, p = softmax over the class dim (1; 0 for a (C) input),
    class-index targets with ignore_index, the weighted mean dividing by sum of w_t (as
    cross_entropy; alpha is not in the denominator). alpha: None (1), a float (every sample), or a
    per-class (C,) tensor (a_t = alpha[t]). gamma = 0, alpha = None is cross_entropy.
    label_smoothing eps follows cross_entropy's rule: (1 - eps) times the target's term plus
    eps / C times the sum over every class c of -w_c a_c (1 - p_c)^gamma log p_c (a second native
    sweep over the row); with gamma = 0, alpha None it is cross_entropy's label smoothing. CPU: a target outside [0, C) raises IndexError; CUDA
    (no host sync): that sample's loss and gradient are NaN."""
    r = _RED.get(reduction)
    if r is None:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if gamma < 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    check_weight_not_differentiable("focal_loss", weight)
    if isinstance(alpha, Tensor) and alpha.requires_grad and torch.is_grad_enabled():
        raise RuntimeError("The function 'focal_loss' is not differentiable with respect to argument 'alpha'. "
                           "This input cannot have requires_grad True.")
    if label_smoothing > 0 and gamma == 0 and alpha is None:  # exactly cross_entropy's (one sweep fewer)
        return _loss["cross_entropy"](input, target, weight, r, ignore_index, float(label_smoothing), None)
    if target.is_floating_point():
        raise NotImplementedError("focal_loss: probability targets are not supported; pass class indices")
    a_t = alpha if isinstance(alpha, Tensor) else None
    a_v = 1.0 if alpha is None or a_t is not None else float(alpha)
    return _loss["focal_loss"](input, target, weight, a_t, a_v, float(gamma), r, int(ignore_index),
                               float(label_smoothing), None)
