"""lossext.distributed: cross-entropy over a vocabulary split across processes (tensor parallelism).

Each rank holds a slice [vocab_start, vocab_start + V_local) of the class (vocabulary) dim of the
logits, or of the LM head's rows. Per step the forward issues ONE collective, an all_gather of a few
numbers per row (the slice's max, sum of exponentials relative to it, the target's logit if the
target is in the slice; with label smoothing the slice's weighted logit sum and weight sum), which
every rank combines in the same rank order: the loss has the same bits on every rank. The logits
version's backward needs no communication; the linear version's backward all-reduces dx (N x H).
The math is native (csrc/ops/vocab_parallel_cross_entropy.cpp, the row-wise driver's kernels); the
collectives are torch.distributed's.

Autograd: a Python autograd.Function per loss. The forward is three native ops with a process-group
collective between them, which a C++ LOSSEXT_AUTOGRAD row (one op, no ProcessGroup argument) cannot
express. The backward is first-order only: backward with create_graph=True raises.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._C_loader import _C  # noqa: F401  (registers the ops)
from ._common import check_weight_not_differentiable, reduction_enum

_ops = torch.ops.lossext

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy"]


# ---- fake kernels (torch.compile, opcheck) ---------------------------------------------------------

def _math_dtype(dt):
    return torch.float32 if dt in (torch.float16, torch.bfloat16) else dt


def _stats_count(label_smoothing):
    return 5 if label_smoothing > 0 else 3


@torch.library.register_fake("lossext::vocab_parallel_cross_entropy_stats")
def _(logits, target, vocab_start, weight, ignore_index, label_smoothing):
    return logits.new_empty((logits.shape[0], _stats_count(label_smoothing)), dtype=_math_dtype(logits.dtype))


@torch.library.register_fake("lossext::vocab_parallel_cross_entropy_combine")
def _(stats, target, weight, reduction, ignore_index, label_smoothing, dtype):
    n = stats.shape[1]
    loss = stats.new_empty((n,) if reduction == 0 else (), dtype=dtype)
    return loss, stats.new_empty((n, 5)), stats.new_empty((1,), dtype=torch.float64)


@torch.library.register_fake("lossext::vocab_parallel_cross_entropy_backward")
def _(grad_output, logits, target, weight, vocab_start, reduction, ignore_index, label_smoothing, saved, denominator):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


@torch.library.register_fake("lossext::vocab_parallel_linear_cross_entropy_stats")
def _(input, linear_weight, target, linear_bias, vocab_start, weight, ignore_index, label_smoothing, chunk_size):
    return input.new_empty((input.shape[0], _stats_count(label_smoothing)), dtype=_math_dtype(input.dtype))


@torch.library.register_fake("lossext::vocab_parallel_linear_cross_entropy_backward")
def _(grad_output, input, linear_weight, target, linear_bias, vocab_start, weight, reduction, ignore_index,
      label_smoothing, chunk_size, saved, denominator, grad_mask):
    def g(want, like):
        return like.new_empty(like.shape) if want and like is not None else (like if like is not None else input).new_empty((0,))
    return g(grad_mask[0], input), g(grad_mask[1], linear_weight), g(grad_mask[2], linear_bias)


# ---- the collective --------------------------------------------------------------------------------

def _world(group):
    return dist.get_world_size(group), dist.get_rank(group)


def _gather_stats(stats: Tensor, group) -> Tensor:
    """(N, k) -> (P, N, k): every rank's statistics, in rank order (one all_gather)."""
    world, _ = _world(group)
    out = stats.new_empty((world * stats.shape[0], stats.shape[1]))
    # all_gather_single is torch 2.13's name of all_gather_into_tensor (deprecated there).
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(out, stats.contiguous(), group=group)
    return out.view(world, stats.shape[0], stats.shape[1])


def _slice_start(vocab_start, v_local, group):
    if vocab_start is not None:
        if vocab_start < 0:
            raise ValueError(f"vocab_parallel_cross_entropy: vocab_start must be >= 0, got {vocab_start}")
        return int(vocab_start)
    _, rank = _world(group)
    return rank * v_local


# ---- DTensor inputs --------------------------------------------------------------------------------

def _dtensor_cls():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover
        return None
    return DTensor


def _from_dtensor(t, dim, what):
    """A DTensor sharded on `dim` over a 1-D mesh -> (local tensor, group, global offset of the shard)."""
    from torch.distributed.tensor import Shard

    mesh = t.device_mesh
    if mesh.ndim != 1 or len(t.placements) != 1 or not isinstance(t.placements[0], Shard) or \
            t.placements[0].dim % t.ndim != dim % t.ndim:
        raise ValueError(f"lossext.distributed: {what} as a DTensor must be sharded on its vocabulary dim "
                         f"(Shard({dim}) on a 1-D mesh), got placements {t.placements} on a {mesh.ndim}-D mesh")
    group = mesh.get_group()
    world, rank = _world(group)
    size = t.shape[dim]
    full = -(-size // world)  # torch.chunk's rule, as DTensor's Shard
    start = min(rank * full, size)
    return t.to_local(), group, start


def _local(t):
    cls = _dtensor_cls()
    if cls is not None and isinstance(t, cls):
        return t.full_tensor()
    return t


def _first_order_only(name):
    """The backward raises under create_graph=True: these losses have no second derivative, and a
    first-order gradient detached from the graph would make a second one silently zero."""
    def deco(backward):
        def wrapped(ctx, *grads):
            if torch.is_grad_enabled():
                raise RuntimeError(f"lossext.distributed.{name}: double backward (create_graph=True) is not "
                                   "implemented; the vocab-parallel losses are first-order only")
            return backward(ctx, *grads)
        return wrapped
    return deco


# ---- the logits version ----------------------------------------------------------------------------

class _VocabParallelCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, weight, group, vocab_start, red, ii, eps, loss_dtype):
        stats = _ops.vocab_parallel_cross_entropy_stats(logits, target, vocab_start, weight, ii, eps)
        gathered = _gather_stats(stats, group)
        loss, saved, den = _ops.vocab_parallel_cross_entropy_combine(gathered, target, _as(weight, loss_dtype), red,
                                                                      ii, eps, loss_dtype)
        ctx.save_for_backward(logits, target, weight, saved, den)
        ctx.args = (vocab_start, red, ii, eps)
        return loss

    @staticmethod
    @_first_order_only("vocab_parallel_cross_entropy")
    @once_differentiable
    def backward(ctx, grad_output):
        logits, target, weight, saved, den = ctx.saved_tensors
        vocab_start, red, ii, eps = ctx.args
        g = None
        if ctx.needs_input_grad[0]:
            g = _ops.vocab_parallel_cross_entropy_backward(grad_output, logits, target, weight, vocab_start, red, ii,
                                                           eps, saved, den)
        return g, None, None, None, None, None, None, None, None


def _as(weight, dtype):
    return weight if weight is None or weight.dtype == dtype else weight.to(dtype)


def _autocast(t):
    return t.is_floating_point() and torch.is_autocast_enabled(t.device.type)


def _loss_dtype(t):
    """torch's autocast runs cross_entropy in float32: under autocast the loss is float32 (the statistics
    are float32 anyway), the gradient in the input's dtype as the cast's backward gives it."""
    return torch.float32 if _autocast(t) and t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _check_common(fn, target, weight, reduction, label_smoothing):
    if target.is_floating_point():
        raise NotImplementedError(f"lossext {fn}: probability targets are not supported; pass global class indices")
    check_weight_not_differentiable(fn, weight)
    if not label_smoothing <= 1.0:
        raise RuntimeError(f"{fn}: label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    return reduction_enum(reduction)


def _lead_of(name: str, what: str, x: torch.Tensor, target: torch.Tensor, expected: str):
    """x's leading dims (all but the last), which the target's shape must equal (ValueError)."""
    if x.dim() < 1:
        raise ValueError(f"{name}: expected {what} {expected}, got a 0-d tensor")
    lead = x.shape[:-1]
    if tuple(target.shape) != tuple(lead):
        raise ValueError(f"{name}: expected target of shape {tuple(lead)} for {what} of shape {tuple(x.shape)}, "
                         f"got {tuple(target.shape)}")
    return lead


def vocab_parallel_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    group=None,
    vocab_start: Optional[int] = None,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """cross_entropy of logits whose class dim is split across the ranks of `group`.

    `logits` (..., V_local): this rank's slice [vocab_start, vocab_start + V_local) of the vocabulary
    (default vocab_start: rank * V_local in `group`; uneven slices need an explicit vocab_start). It may
    instead be a DTensor sharded on its last dim (Shard(-1) on a 1-D mesh): the mesh gives the group
    and the offset. `target` (...): global class indices; `weight` the full (V,) class weights. Returns
    the same loss (same bits) on every rank; the gradient flows to the local slice only. One
    all_gather in the forward, no communication in the backward.
    """
    cls = _dtensor_cls()
    if cls is not None and isinstance(logits, cls):
        logits, group, vocab_start = _from_dtensor(logits, -1, "logits")
    target, weight = _local(target), (None if weight is None else _local(weight))
    red = _check_common("vocab_parallel_cross_entropy", target, weight, reduction, label_smoothing)
    lead = _lead_of("vocab_parallel_cross_entropy", "logits", logits, target, "with a class dim")
    v_local = logits.shape[-1]
    start = _slice_start(vocab_start, v_local, group)
    loss = _VocabParallelCE.apply(logits.reshape(-1, v_local), target.reshape(-1), weight, group, start, red,
                                  int(ignore_index), float(label_smoothing), _loss_dtype(logits))
    return loss.view(lead) if red == 0 else loss


# ---- the linear version ----------------------------------------------------------------------------

class _VocabParallelLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, w, target, bias, weight, group, vocab_start, red, ii, eps, chunk, loss_dtype):
        stats = _ops.vocab_parallel_linear_cross_entropy_stats(input, w, target, bias, vocab_start, weight, ii, eps,
                                                               chunk)
        gathered = _gather_stats(stats, group)
        loss, saved, den = _ops.vocab_parallel_cross_entropy_combine(gathered, target, _as(weight, loss_dtype), red,
                                                                      ii, eps, loss_dtype)
        ctx.save_for_backward(input, w, target, bias, weight, saved, den)
        ctx.args = (group, vocab_start, red, ii, eps, chunk)
        return loss

    @staticmethod
    @_first_order_only("vocab_parallel_linear_cross_entropy")
    @once_differentiable
    def backward(ctx, grad_output):
        input, w, target, bias, weight, saved, den = ctx.saved_tensors
        group, vocab_start, red, ii, eps, chunk = ctx.args
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias is not None and ctx.needs_input_grad[3]]
        if not any(mask):
            return (None,) * 12
        dx, dw, db = _ops.vocab_parallel_linear_cross_entropy_backward(
            grad_output, input, w, target, bias, vocab_start, weight, red, ii, eps, chunk, saved, den, mask)
        if mask[0]:
            dist.all_reduce(dx, group=group)  # every rank's part of dx = dlogits W, summed over the vocabulary
        return (dx if mask[0] else None, dw if mask[1] else None, None, db if mask[2] else None,
                None, None, None, None, None, None, None, None)


def vocab_parallel_linear_cross_entropy(
    input: Tensor,
    weight_shard: Tensor,
    target: Tensor,
    *,
    linear_bias_shard: Optional[Tensor] = None,
    group=None,
    vocab_start: Optional[int] = None,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    chunk_size: Optional[int] = None,
) -> Tensor:
    """The LM head and its cross-entropy with the head's rows split by vocabulary across `group`.

    `input` (..., H) is the same on every rank; `weight_shard` (V_local, H) and `linear_bias_shard`
    (V_local,) are this rank's rows [vocab_start, vocab_start + V_local) of the head (or a DTensor
    head sharded on dim 0, Shard(0) on a 1-D mesh). Fused as lossext's linear_cross_entropy: no
    logits beyond one chunk of tokens (`chunk_size`). One all_gather in the forward; the backward
    recomputes the chunk logits and all-reduces dx (N x H) once.
    """
    cls = _dtensor_cls()
    if cls is not None and isinstance(weight_shard, cls):
        weight_shard, group, vocab_start = _from_dtensor(weight_shard, 0, "weight_shard")
        if linear_bias_shard is not None and isinstance(linear_bias_shard, cls):
            linear_bias_shard = linear_bias_shard.to_local()
    target, weight = _local(target), (None if weight is None else _local(weight))
    red = _check_common("vocab_parallel_linear_cross_entropy", target, weight, reduction, label_smoothing)
    lead = _lead_of("vocab_parallel_linear_cross_entropy", "input", input, target, "of shape (..., H)")
    if weight_shard.dim() != 2:
        raise ValueError(f"vocab_parallel_linear_cross_entropy: expected weight_shard of shape (V_local, H), got "
                         f"{tuple(weight_shard.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"vocab_parallel_linear_cross_entropy: chunk_size must be >= 1, got {chunk_size}")
    start = _slice_start(vocab_start, weight_shard.shape[0], group)
    loss_dtype = input.dtype
    if _autocast(input):  # as torch's linear under autocast: the matmuls in the autocast dtype, the loss float32
        dt = torch.get_autocast_dtype(input.device.type)
        input, weight_shard = input.to(dt), weight_shard.to(dt)
        linear_bias_shard = None if linear_bias_shard is None else linear_bias_shard.to(dt)
        weight = _as(weight, dt)
        loss_dtype = torch.float32
    loss = _VocabParallelLinearCE.apply(input.reshape(-1, input.shape[-1]), weight_shard, target.reshape(-1),
                                        linear_bias_shard, weight, group, start, red, int(ignore_index),
                                        float(label_smoothing), int(chunk_size or 0), loss_dtype)
    return loss.view(lead) if red == 0 else loss
