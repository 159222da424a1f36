"""ctc_loss: torch.nn.functional.ctc_loss's signature, computed by lossext's kernels
(csrc/losses/ctc_loss.h). Re-exported from lossext.functional."""
from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch import Tensor

from . import _specs  # noqa: F401  (registers fake kernels and autograd)
from ._common import reduction_enum
from ._registry import CALLS as _loss  # name -> the op's call: (*args) -> loss

Lengths = Union[Tensor, Sequence[int]]


def _lengths(v, name: str) -> Tensor:
    """A tensor of lengths as given (any integral dtype, any device), or a list/tuple of ints as a
    CPU int64 tensor (checked on the host, copied to the device without a sync)."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, int) or (isinstance(x, Tensor) and x.dim() == 0)
                                            for x in v):
        return torch.tensor([int(x) for x in v], dtype=torch.long)
    raise TypeError(f"ctc_loss(): {name} must be a Tensor or a tuple of ints, but got {type(v).__name__}")


def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Tensor:
    """torch.nn.functional.ctc_loss, computed by lossext's kernels, deterministic on both devices.

    Beyond torch: labels are checked (in [0, C) and not the blank; lengths within bounds): on the
    CPU, and for whatever is given on the host, a RuntimeError naming the sample and the value; for
    targets or lengths on a CUDA device (checked there, no host sync) the invalid sample's loss and
    gradient are NaN. Any blank in [0, C), any target length, float16/bfloat16 inputs (computed in
    float) on both devices."""
    r = reduction_enum(reduction)
    if isinstance(input_lengths, Tensor) != isinstance(target_lengths, Tensor):  # torch's overloads
        raise TypeError("ctc_loss(): input_lengths and target_lengths must both be Tensors or both be tuples "
                        f"of ints, but got {type(input_lengths).__name__} and {type(target_lengths).__name__}")
    il = _lengths(input_lengths, "input_lengths")
    tl = _lengths(target_lengths, "target_lengths")
    return _loss["ctc_loss"](log_probs, targets, il, tl, int(blank), r, bool(zero_infinity), None)


__all__: List[str] = ["ctc_loss"]
