"""The margin and embedding losses of lossext.functional (re-exported there): margin_ranking,
hinge_embedding, multi_margin, multilabel_margin, cosine_embedding, triplet_margin[_with_distance]."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from ._common import check_weight_not_differentiable, reduction_enum
from ._registry import CALLS as _loss  # name -> the op's call: (*args) -> loss


# ---- margin_ranking_loss, hinge_embedding_loss ----------------------------------------------------

def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """max(0, -target * (input1 - input2) + margin); input1, input2 and target are differentiable,
    as in torch's composite."""
    r = reduction_enum(reduction, size_average, reduce)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():  # torch's check and message
        raise RuntimeError(
            f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
            f"input1: {input1.size()}, input2: {input2.size()}, target: {target.size()} ")
    return _loss["margin_ranking_loss"](input1, input2, target, float(margin), r, None)


def hinge_embedding_loss(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """Where target != 1: max(0, margin - input); plus, where target != -1: input. Only the input is
    differentiable (torch's composite only compares the target)."""
    r = reduction_enum(reduction, size_average, reduce)
    if target.requires_grad:  # as in torch, a target that requires grad does not make the loss require it
        target = target.detach()
    return _loss["hinge_embedding_loss"](input, target, float(margin), r, None)


# ---- multi_margin_loss, multilabel_margin_loss -----------------------------------------------------

def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight: Optional[Tensor] = None,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """sum_{c != y} w[y] max(0, margin - x[y] + x[c])^p / C per sample. CPU: a target outside [0, C)
    raises RuntimeError, as torch; CUDA (no host sync): that sample's loss and gradient are NaN."""
    r = reduction_enum(reduction, size_average, reduce)
    if p != 1 and p != 2:  # torch's checks and messages
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    check_weight_not_differentiable("multi_margin_loss", weight)
    return _loss["multi_margin_loss"](input, target, int(p), float(margin), weight, r, None)


def multilabel_margin_loss(
    input: Tensor,
    target: Tensor,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """sum over the row's targets j (the classes listed before the first -1) and its non-target
    classes i of max(0, 1 - (x[y_j] - x[i])) / C. CPU: a target entry outside [-1, C) raises
    RuntimeError, as torch; CUDA (no host sync): that sample's loss and gradient are NaN."""
    r = reduction_enum(reduction, size_average, reduce)
    return _loss["multilabel_margin_loss"](input, target, r, None)


# ---- embedding losses on the row-wise driver (one row = one sample's D features) ----------------

def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """1 - cos(x1, x2) where target == 1, max(0, cos(x1, x2) - margin) where target == -1, 0 for any
    other target (as torch). input1 and input2 are differentiable; the target is only compared."""
    r = reduction_enum(reduction, size_average, reduce)
    if target.requires_grad:  # as in torch, a target that requires grad does not make the loss require it
        target = target.detach()
    return _loss["cosine_embedding_loss"](input1, input2, target, float(margin), r, None)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Optional[bool] = None,
    reduce: Optional[bool] = None,
    reduction: str = "mean",
) -> Tensor:
    """max(0, margin + d(a, p) - d(a, n)), d(x, y) = ||x - y + eps||_p over the last dim (torch's
    pairwise_distance); with swap, d(a, n) is min(d(a, n), d(p, n)). All three are differentiable."""
    r = reduction_enum(reduction, size_average, reduce)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    return _loss["triplet_margin_loss"](anchor, positive, negative, float(margin), float(p), float(eps), bool(swap),
                                        r, None)


def triplet_margin_with_distance_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    distance_function: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Without a distance function, triplet_margin_loss with torch.pairwise_distance's p=2, eps=1e-6
    (all native). With one, the callable's distances (autograd flows through it) feed lossext's
    native margin op: max(0, margin + d(a, p) - d_neg), d_neg = d(a, n) or, with swap,
    min(d(a, n), d(p, n)), reduced as asked."""
    if reduction not in ("mean", "sum", "none"):  # torch's checks, in its order
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(
            f"The anchor, positive, and negative tensors are expected to have the same number of dimensions, "
            f"but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative {negative.ndim}D inputs")
    native = _native_pairwise(distance_function)
    if native is not None:
        return triplet_margin_loss(anchor, positive, negative, margin=margin, p=native[0], eps=native[1], swap=swap,
                                   reduction=reduction)
    dist_pos = distance_function(anchor, positive)
    dist_neg = distance_function(anchor, negative)
    dist_swap = distance_function(positive, negative) if swap else None
    r = reduction_enum(reduction)
    return _loss["triplet_margin_with_distance_loss"](dist_pos, dist_neg, dist_swap, float(margin), r, None)


def _native_pairwise(fn):
    """(p, eps) where `fn` is torch's pairwise distance (None, torch.pairwise_distance,
    F.pairwise_distance, or a plain nn.PairwiseDistance without keepdim), else None."""
    if fn is None or fn is torch.pairwise_distance or fn is torch.nn.functional.pairwise_distance:
        return 2.0, 1e-6
    if type(fn) is torch.nn.PairwiseDistance and not fn.keepdim and not (fn._forward_hooks or fn._forward_pre_hooks):
        return float(fn.norm), float(fn.eps)
    return None
