"""lossext.functional.linear_cross_entropy (re-exported there): the LM head and its cross-entropy,
fused chunk by chunk of tokens (csrc/ops/linear_cross_entropy.cpp)."""
from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import Tensor

from ._common import check_weight_not_differentiable, grad_mask, reduction_enum
from ._registry import call_all as _call_all

_options_warned = False


def _warn_options() -> None:
    global _options_warned
    if not _options_warned and not torch.compiler.is_compiling():
        _options_warned = True
        warnings.warn("lossext linear_cross_entropy: `options` is ignored (the fused chunked path is always on; "
                      "use chunk_size= or memory_budget= to size the chunks)", stacklevel=3)


def linear_cross_entropy(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Optional[Tensor] = None,
    weight: Optional[Tensor] = None,
    reduction: str = "mean",
    ignore_index: Optional[int] = None,
    label_smoothing: float = 0.0,
    options=None,
    chunk_size: Optional[int] = None,
    memory_budget: Optional[int] = None,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    return_lse: bool = False,
    return_z_loss: bool = False,
):
    """torch.nn.functional.linear_cross_entropy (torch 2.13), computed chunk by chunk of tokens:
    logits = input @ linear_weight.T + linear_bias are never materialised beyond one chunk, and the
    gradients of input, linear_weight and linear_bias are written in the forward (mean/sum).

    Beyond torch: `input` may have any leading dims (..., H) with a 2-D linear_weight (the target
    then has shape (...) or (..., C)). lossext extras (keyword-only): `chunk_size` (tokens per
    chunk) or `memory_budget` (bytes of one chunk's logits); default chosen from the shapes.
    `z_loss`: each non-ignored token adds
    z_loss * w_t * logsumexp(logits)^2 (w_t: its class weight, 1 unweighted; probability targets:
    1), reduced like the cross-entropy. `softcap`: the logits become softcap * tanh(logits / softcap)
    (Gemma) before the cross-entropy. `options` is accepted and ignored (one warning).

    For logging, `return_z_loss=True` also returns the z-loss part of the loss (reduced like the
    loss; per token for 'none') and `return_lse=True` the per-token log-sum-exp of the (softcapped)
    logits, shaped as the 'none' loss (0 for ignored tokens), both in float32 (float64 for float64
    inputs): `(loss, z_loss)`, `(loss, lse)` or `(loss, z_loss, lse)`. They come from the statistics
    the forward keeps anyway (no extra pass over the logits) and are not differentiable (returned
    with requires_grad=False): a differentiable log-sum-exp penalty is `z_loss=`. The class weight
    and the target are not differentiable.
    """
    if softcap is not None and not softcap > 0:
        raise ValueError(f"linear_cross_entropy: softcap must be > 0, got {softcap}")
    if options is not None:
        _warn_options()
    r = reduction_enum(reduction)
    check_weight_not_differentiable("linear_cross_entropy", weight)
    if input.dim() >= 1 and linear_weight.dim() >= 2:
        logits_shape = (*input.shape[:-1], *linear_weight.shape[:-1])
        if tuple(target.shape) == logits_shape and ignore_index is not None:
            raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    ii = -100 if ignore_index is None else int(ignore_index)
    autocast = input.is_floating_point() and torch.is_autocast_enabled(input.device.type)
    if autocast:  # as torch's linear under autocast: half matmuls; the statistics are float32 anyway
        dt = torch.get_autocast_dtype(input.device.type)
        with torch.autocast(input.device.type, enabled=False):
            input, linear_weight = input.to(dt), linear_weight.to(dt)
            linear_bias = linear_bias.to(dt) if linear_bias is not None else None
            if weight is not None:
                weight = weight.to(dt)
            if target.is_floating_point():
                target = target.to(dt)
    cs = 0
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"linear_cross_entropy: chunk_size must be >= 1, got {chunk_size}")
        cs = int(chunk_size)
    elif memory_budget is not None:
        row = math.prod(linear_weight.shape[:-1]) * input.element_size()
        cs = max(1, int(memory_budget) // max(1, row))
    with torch.autocast(input.device.type, enabled=False) if autocast else _null():
        out = _call_all("linear_cross_entropy", input, linear_weight, target, linear_bias, weight, r, ii,
                    float(label_smoothing), float(z_loss), float(softcap or 0.0), cs, grad_mask(input, linear_weight, linear_bias))
        loss = out[0].float() if autocast else out[0]
        if not (return_lse or return_z_loss):
            return loss
        # Logging outputs from the forward's saved (m, log z) per token (csrc/ops/linear_cross_entropy_stats.cpp).
        lse, zl = torch.ops.lossext.linear_cross_entropy_stats.default(out[4], target, weight, r, ii, float(z_loss))
    shape = (*input.shape[:-1], *linear_weight.shape[1:-1])
    extras = (zl.view(shape) if r == 0 else zl,) if return_z_loss else ()
    return (loss, *extras, lse.view(shape)) if return_lse else (loss, *extras)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
