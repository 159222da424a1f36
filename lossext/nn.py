"""lossext.nn: drop-in subclasses of torch.nn's loss modules.

Each class *is* its torch counterpart (same constructor, attributes, buffers, state_dict and repr;
isinstance checks keep working); only forward runs lossext's kernels.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import functional as LF

__all__ = [
    "BCEWithLogitsLoss",
    "BCELoss",
    "L1Loss",
    "MSELoss",
    "HuberLoss",
    "SmoothL1Loss",
    "SoftMarginLoss",
    "PoissonNLLLoss",
    "GaussianNLLLoss",
    "KLDivLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "MultiLabelSoftMarginLoss",
    "MarginRankingLoss",
    "HingeEmbeddingLoss",
    "MultiMarginLoss",
    "MultiLabelMarginLoss",
    "CosineEmbeddingLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "LinearCrossEntropyLoss",
    "SigmoidFocalLoss",
    "FocalLoss",
    "CTCLoss",
]


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    __doc__ = torch.nn.BCEWithLogitsLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction)


class PoissonNLLLoss(torch.nn.PoissonNLLLoss):
    __doc__ = torch.nn.PoissonNLLLoss.__doc__

    def forward(self, log_input: Tensor, target: Tensor) -> Tensor:
        return LF.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                   reduction=self.reduction)


class GaussianNLLLoss(torch.nn.GaussianNLLLoss):
    __doc__ = torch.nn.GaussianNLLLoss.__doc__

    def forward(self, input: Tensor, target: Tensor, var) -> Tensor:
        return LF.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)


class KLDivLoss(torch.nn.KLDivLoss):
    __doc__ = torch.nn.KLDivLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class L1Loss(torch.nn.L1Loss):
    __doc__ = torch.nn.L1Loss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.l1_loss(input, target, reduction=self.reduction)


class MSELoss(torch.nn.MSELoss):
    __doc__ = torch.nn.MSELoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.mse_loss(input, target, reduction=self.reduction)


class HuberLoss(torch.nn.HuberLoss):
    __doc__ = torch.nn.HuberLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(torch.nn.SmoothL1Loss):
    __doc__ = torch.nn.SmoothL1Loss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class SoftMarginLoss(torch.nn.SoftMarginLoss):
    __doc__ = torch.nn.SoftMarginLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.soft_margin_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    __doc__ = torch.nn.CrossEntropyLoss.__doc__

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0, *, inplace_backward: bool = False) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        # lossext only: write the gradient over the logits (see lossext.functional.cross_entropy).
        self.inplace_backward = inplace_backward

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing,
                               inplace_backward=self.inplace_backward)


class NLLLoss(torch.nn.NLLLoss):
    __doc__ = torch.nn.NLLLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(torch.nn.BCELoss):
    __doc__ = torch.nn.BCELoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class MultiLabelSoftMarginLoss(torch.nn.MultiLabelSoftMarginLoss):
    __doc__ = torch.nn.MultiLabelSoftMarginLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)


class MarginRankingLoss(torch.nn.MarginRankingLoss):
    __doc__ = torch.nn.MarginRankingLoss.__doc__

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return LF.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class HingeEmbeddingLoss(torch.nn.HingeEmbeddingLoss):
    __doc__ = torch.nn.HingeEmbeddingLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class MultiMarginLoss(torch.nn.MultiMarginLoss):
    __doc__ = torch.nn.MultiMarginLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                    reduction=self.reduction)


class MultiLabelMarginLoss(torch.nn.MultiLabelMarginLoss):
    __doc__ = torch.nn.MultiLabelMarginLoss.__doc__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.multilabel_margin_loss(input, target, reduction=self.reduction)
class CosineEmbeddingLoss(torch.nn.CosineEmbeddingLoss):
    __doc__ = torch.nn.CosineEmbeddingLoss.__doc__

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return LF.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class TripletMarginLoss(torch.nn.TripletMarginLoss):
    __doc__ = torch.nn.TripletMarginLoss.__doc__

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return LF.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                      swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(torch.nn.TripletMarginWithDistanceLoss):
    __doc__ = torch.nn.TripletMarginWithDistanceLoss.__doc__

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        # torch's default distance is an nn.PairwiseDistance(): lossext's native path.
        return LF.triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=self.distance_function,
                                                    margin=self.margin, swap=self.swap, reduction=self.reduction)


class LinearCrossEntropyLoss(torch.nn.LinearCrossEntropyLoss):
    """torch.nn.LinearCrossEntropyLoss (same constructor, parameters and state_dict), fused by
    lossext.functional.linear_cross_entropy. lossext's extras are keyword-only constructor arguments,
    off by default: z_loss, softcap, chunk_size, memory_budget, return_z_loss, return_lse (see the
    functional; with a return_* flag, forward returns a tuple)."""

    _EXTRAS = dict(z_loss=0.0, softcap=None, chunk_size=None, memory_budget=None, return_z_loss=False,
                   return_lse=False)

    def __init__(self, *args, z_loss: float = 0.0, softcap=None, chunk_size=None, memory_budget=None,
                 return_z_loss: bool = False, return_lse: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.z_loss, self.softcap, self.chunk_size, self.memory_budget = z_loss, softcap, chunk_size, memory_budget
        self.return_z_loss, self.return_lse = return_z_loss, return_lse

    def extra_repr(self) -> str:
        extras = [f"{k}={getattr(self, k)!r}" for k, d in self._EXTRAS.items() if getattr(self, k) != d]
        return ", ".join([super().extra_repr(), *extras]).strip(", ")

    def forward(self, input: Tensor, target: Tensor):
        lw = self.linear.weight.reshape((self.num_classes, *self.out_features, self.linear.in_features))
        lb = (self.linear.bias.reshape((self.num_classes, *self.out_features))
              if self.linear.bias is not None else None)
        return LF.linear_cross_entropy(input, lw, target, linear_bias=lb, weight=self.weight, reduction=self.reduction,
                                       ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                                       options=self.options, **{k: getattr(self, k) for k in self._EXTRAS})


class SigmoidFocalLoss(torch.nn.Module):
    """lossext.functional.sigmoid_focal_loss as a module (torchvision's semantics; reduction
    'none' by default, as torchvision's function). Float or class-index targets; `weight` and a
    fixed `normalizer` are buffers; forward(inputs, targets, normalizer=None) takes a per-step
    normalizer (e.g. the batch's number of positives), which replaces the buffer."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none", *, weight=None,
                 normalizer=None, ignore_index: int = -100) -> None:
        super().__init__()
        self.alpha, self.gamma, self.reduction, self.ignore_index = alpha, gamma, reduction, ignore_index
        self.register_buffer("weight", weight)
        self.register_buffer("normalizer", normalizer)

    def forward(self, inputs: Tensor, targets: Tensor, normalizer: Optional[Tensor] = None) -> Tensor:
        return LF.sigmoid_focal_loss(inputs, targets, self.alpha, self.gamma, self.reduction, weight=self.weight,
                                     normalizer=self.normalizer if normalizer is None else normalizer,
                                     ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        s = f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"
        if self.ignore_index != -100:
            s += f", ignore_index={self.ignore_index}"
        return s


class FocalLoss(torch.nn.Module):
    """lossext.functional.focal_loss (softmax form) as a module; a tensor alpha and the weight are buffers."""

    def __init__(self, alpha=None, gamma: float = 2.0, weight=None, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        if isinstance(alpha, Tensor):
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = alpha
        self.register_buffer("weight", weight)
        self.gamma, self.ignore_index, self.reduction = gamma, ignore_index, reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.focal_loss(input, target, alpha=self.alpha, gamma=self.gamma, weight=self.weight,
                             ignore_index=self.ignore_index, reduction=self.reduction,
                             label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        a = "tensor" if isinstance(self.alpha, Tensor) else self.alpha
        return (f"alpha={a}, gamma={self.gamma}, ignore_index={self.ignore_index}, "
                f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}")


class CTCLoss(torch.nn.CTCLoss):
    __doc__ = torch.nn.CTCLoss.__doc__

    def forward(self, log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor) -> Tensor:
        return LF.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction,
                           self.zero_infinity)
