"""Argument handling shared by every functional: reduction strings and the grad mask."""
from __future__ import annotations

import torch
from torch.nn import _reduction as _Reduction


def reduction_enum(reduction: str, size_average=None, reduce=None) -> int:
    """torch's rules: legacy size_average/reduce win (with torch's deprecation warning), and an
    unknown string raises ValueError("<s> is not a valid value for reduction")."""
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    return _Reduction.get_enum(reduction)


def grad_mask(*tensors) -> list:
    """Which of `tensors` the forward should compute a gradient for, in the same pass."""
    on = torch.is_grad_enabled()
    return [bool(on and isinstance(t, torch.Tensor) and t.requires_grad) for t in tensors]
