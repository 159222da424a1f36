"""Argument handling shared by every functional: the reduction argument and the grad mask."""
from __future__ import annotations

import torch
from torch.nn import _reduction as _Reduction

_ENUM = {"none": 0, "mean": 1, "sum": 2}
# torch.nn.functional's own ValueError texts for an unknown reduction string (they differ by loss).
INVALID = "{} is not a valid value for reduction"
NOT_VALID = "{} is not valid"
WEIGHTED_INVALID = "Invalid reduction mode: {}. Expected one of 'none', 'mean', 'sum'."


def reduction_enum(reduction: str, size_average=None, reduce=None, invalid: str = INVALID) -> int:
    """The one reduction parser of every functional, with torch's rules: legacy size_average/reduce
    win over the string (with torch's deprecation warning); an unknown string raises ValueError
    with the message torch's functional for that loss uses (`invalid`, formatted with the string)."""
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    r = _ENUM.get(reduction)
    if r is None:
        raise ValueError(invalid.format(reduction))
    return r


def grad_mask(*tensors) -> list:
    """Which of `tensors` the forward should compute a gradient for, in the same pass."""
    on = torch.is_grad_enabled()
    return [bool(on and isinstance(t, torch.Tensor) and t.requires_grad) for t in tensors]


def check_weight_not_differentiable(name: str, weight) -> None:
    """torch's composites differentiate a class weight; lossext's kernels do not: raise torch's own
    error rather than drop the gradient."""
    if weight is not None and weight.requires_grad and torch.is_grad_enabled():
        raise RuntimeError(f"The function '{name}' is not differentiable with respect to argument 'weight'. "
                           "This input cannot have requires_grad True.")
