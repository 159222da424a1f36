"""Fake kernels and autocast for every lossext op, from one table (the autograd is in C++).

Every loss follows one op contract (see csrc/include/lossext/ops.h):

    lossext::<name>(<tensor and scalar args>, int reduction, bool[k] grad_mask)
        -> (Tensor loss, Tensor grad_<d1>, ..., Tensor grad_<dk>, <aux tensors>)
    lossext::<name>_backward(Tensor grad_output, <the same args>, <aux tensors>, bool[k] grad_mask)
        -> (Tensor grad_<d1>, ..., Tensor grad_<dk>)

d1..dk are the loss's differentiable tensor arguments. With reduction mean/sum and grad_mask[i]
set, the forward computes grad_<di> in the same pass (already scaled by the reduction); the
autograd backward then only multiplies it by the 0-d grad_output (and skips even that on CPU when
grad_output is 1). Otherwise grad_<di> is an empty tensor and the backward op recomputes the
gradient from the saved inputs and aux outputs (a log-sum-exp per row for cross-entropy).

The autograd of both ops is registered at the Autograd key from C++ (csrc/autograd/, one
LOSSEXT_AUTOGRAD row per loss in csrc/ops/<loss>.cpp), so eager Python, C++ programs, torch.compile
and torch.func share it; see csrc/include/lossext/autograd.h. A loss adds one `LossSpec` row here;
this module derives the fake kernels and the autocast policy from it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from ._C_loader import _C  # registers the ops and their autograd
from ._common import grad_mask

_ops = torch.ops.lossext


@dataclass(frozen=True)
class LossSpec:
    name: str
    # Differentiable tensor arguments, in the order of the grad outputs.
    diff: tuple
    # (bound args) -> fake unreduced loss. Default: broadcast of the tensor args, promoted dtype.
    none_loss: Optional[Callable] = None
    # (bound args) -> list of fake aux outputs (saved for the backward). Default: none.
    aux: Optional[Callable] = None
    # Tensor args that take part in the default broadcast / dtype promotion.
    operands: Optional[tuple] = None
    # (bound args) -> bound args with operands replaced by the views the kernel broadcasts
    # (gaussian_nll_loss unsqueezes a var that lacks input's last dimension). Default: as given.
    views: Optional[Callable] = None
    # (bound args) -> dtype of the loss, where it is not the operands' promoted dtype.
    loss_dtype: Optional[Callable] = None
    # torch's autocast policy for this loss on ("cpu", "cuda"): "fp32" (half inputs are cast to
    # float32, as torch's autocast lists do for its losses), None (inputs stay as they are), or
    # "banned" (autocast raises, as torch's binary_cross_entropy on CUDA).
    autocast: tuple = ("fp32", "fp32")


SPECS: dict = {}


def _bind(op, args, kwargs=None):
    schema = op._schema
    out = {}
    for i, a in enumerate(schema.arguments):
        if i < len(args):
            out[a.name] = args[i]
        elif kwargs and a.name in kwargs:
            out[a.name] = kwargs[a.name]
        else:
            out[a.name] = a.default_value
    return out


def _promoted(ts):
    """torch's result type (as at::native::result_type, which the host runner uses): a dimensioned
    tensor's dtype wins over a 0-d one's of the same category; integer-only -> the default dtype."""
    ts = [t for t in ts if isinstance(t, torch.Tensor)]

    def promote(dts):
        return functools.reduce(torch.promote_types, dts) if dts else None

    dim, zero = promote([t.dtype for t in ts if t.dim() > 0]), promote([t.dtype for t in ts if t.dim() == 0])
    if dim is None or zero is None:
        r = dim or zero
    elif dim.is_floating_point or dim.is_complex:
        r = dim
    elif dim == torch.bool or zero.is_floating_point:
        r = torch.promote_types(dim, zero)
    else:
        r = dim
    return r if (r.is_floating_point or r.is_complex) else torch.get_default_dtype()


def _forward_writes_grads(spec, values) -> bool:
    """Whether a reduced forward computes the gradients its grad_mask asks for: not when an operand
    is float16 (a float16 gradient rounded before grad_output multiplies it breaks loss scaling; the
    backward computes it in float). As csrc/ops/host.cpp and rowwise_forward_grads decide."""
    return not any(isinstance(v, torch.Tensor) and v.dtype == torch.float16
                                              for v in values)


def _broadcast_loss(spec, a):
    names = spec.operands or tuple(k for k, v in a.items() if isinstance(v, torch.Tensor))
    ts = [a[n] for n in names if isinstance(a[n], torch.Tensor)]
    shape = torch.broadcast_shapes(*[t.shape for t in ts])
    dtype = spec.loss_dtype(a) if spec.loss_dtype else _promoted(ts)
    x = ts[0]
    if x.shape == shape:
        return torch.empty_like(x, dtype=dtype)
    return x.new_empty(shape, dtype=dtype)


def _grad_like(t, bshape=None):
    if bshape is not None and t.shape != bshape:
        return t.new_empty(t.shape)
    return torch.empty_like(t)


def _views(spec, a):
    return spec.views(a) if spec.views is not None else a


def _bshape(spec, a):
    if spec.none_loss is not None:
        return None
    a = _views(spec, a)
    names = spec.operands or tuple(k for k, v in a.items() if isinstance(v, torch.Tensor))
    return torch.broadcast_shapes(*[a[n].shape for n in names if isinstance(a[n], torch.Tensor)])


def _make_fake_forward(spec, op):
    def fake(*args, **kwargs):
        a = _bind(op, args, kwargs)
        red, mask = a["reduction"], a["grad_mask"]
        x = a[spec.diff[0]]
        if red == 0:
            loss = spec.none_loss(a) if spec.none_loss else _broadcast_loss(spec, _views(spec, a))
        else:
            names = spec.operands or spec.diff
            v = _views(spec, a)
            loss = x.new_empty((), dtype=spec.loss_dtype(a) if spec.loss_dtype else _promoted([v[n] for n in names]))
        bshape = _bshape(spec, a)
        grads = []
        writes = red != 0 and _forward_writes_grads(spec, a.values())
        for n, m in zip(spec.diff, mask):
            t = a[n]
            if t is None:  # an absent optional operand (weight, a float var): "not computed"
                grads.append(x.new_empty((0,)))
            else:
                grads.append(_grad_like(t, bshape) if (writes and m) else t.new_empty((0,)))
        aux = list(spec.aux(a)) if spec.aux else []
        return (loss, *grads, *aux)

    return fake


def _make_fake_backward(spec, op):
    def fake(*args, **kwargs):
        a = _bind(op, args, kwargs)
        bshape = _bshape(spec, a)
        out = []
        for n, m in zip(spec.diff, a["grad_mask"]):
            t = a[n]
            if t is None:  # an absent optional operand
                out.append(a[spec.diff[0]].new_empty((0,)))
            else:
                out.append(_grad_like(t, bshape) if m else t.new_empty((0,)))
        # A loss with one differentiable argument has a backward op returning a single Tensor.
        return out[0] if len(op._schema.returns) == 1 else tuple(out)

    return fake


def _make_call(spec, op):
    """The functionals' entry point for an op: call(*args) -> the loss (the op's first output). The
    op itself runs (its autograd is the C++ kernel at the Autograd key): in eager mode through
    lossext._C.call (csrc/module.cpp: 3-5 us less than OpOverload's generic Python path at N=64),
    under torch.compile through the overload (what dynamo traces). A grad_mask of None means
    "the gradients of the differentiable arguments that require grad", computed by _C.call in C++
    (the functionals' common case; grad_mask() here on the other paths)."""
    pos = [i for i, a in enumerate(op._schema.arguments) if a.name in spec.diff]
    h = _C.op_handle(spec.name, pos)
    fast = _C.call
    # (is_dynamo_compiling: what dynamo traces as True. Other tracers, torch.export's non-strict
    # mode included, hand _C.call fake or proxy tensors, for which it returns NotImplemented.)
    is_compiling = torch.compiler.is_dynamo_compiling

    def slow(args):
        if args[-1] is None:
            args = (*args[:-1], grad_mask(*(args[p] for p in pos)))
        return op(*args)[0]

    def call(*args):
        """The loss; args as the op's, positional, grad_mask last (a list of bools or None)."""
        if not is_compiling():
            loss = fast(h, *args)
            if loss is not NotImplemented:
                return loss
        return slow(args)

    return call


# name -> call(*args) -> the loss (see _make_call); the functionals call these.
CALLS: dict = {}


def register(spec: LossSpec) -> LossSpec:
    op = getattr(_ops, spec.name).default
    bwd = getattr(_ops, spec.name + "_backward").default
    torch.library.register_fake(f"lossext::{spec.name}")(_make_fake_forward(spec, op))
    torch.library.register_fake(f"lossext::{spec.name}_backward")(_make_fake_backward(spec, bwd))
    SPECS[spec.name] = spec
    CALLS[spec.name] = _make_call(spec, op)
    _register_autocast(spec)
    return spec


_AUTOCAST_LIB = torch.library.Library("lossext", "IMPL")  # kept alive: owns the "banned" kernels

_BCE_AUTOCAST_BANNED = (
    "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
    "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast.")


def _register_autocast(spec: LossSpec) -> None:
    """torch's autocast behaviour for the forward op, on every path (eager functionals, dispatcher
    callers, torch.compile): autocast runs above autograd, so the casts are recorded and the
    gradients come back in the caller's dtypes."""
    for device, policy in zip(("cpu", "cuda"), spec.autocast):
        if policy == "fp32" and hasattr(torch.library, "register_autocast"):  # torch >= 2.5
            torch.library.register_autocast(f"lossext::{spec.name}", device, torch.float32)
        elif policy == "banned":
            def banned(*args, _name=spec.name):
                raise RuntimeError(_BCE_AUTOCAST_BANNED if _name == "binary_cross_entropy"
                                   else f"lossext::{_name} is unsafe to autocast")
            key = "Autocast" + torch._C._dispatch_key_for_device(device)
            _AUTOCAST_LIB.impl(spec.name, banned, key)


def call_all(name: str, *args):
    """Every output of lossext::<name>(*args) (the loss first), with autograd; grad_mask explicit."""
    return getattr(_ops, name).default(*args)


@torch.library.register_fake("lossext::scale_grad")
def _scale_grad_fake(grad, grad_output):
    return torch.empty_like(grad)


@torch.library.register_fake("lossext::scale_grad_")
def _scale_grad_inplace_fake(grad, grad_output):
    return None


def register_all(specs: Sequence[LossSpec]) -> None:
    for s in specs:
        register(s)
