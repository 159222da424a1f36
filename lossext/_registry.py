"""Fake kernels and autograd for every lossext op, from one table.

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

A loss adds one `LossSpec` row; this module derives the fake kernels, `setup_context` and
`backward` from the op schemas.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from ._C_loader import _C  # noqa: F401  (registers the ops)
from ._double_backward import _nested_grad_levels, _no_double_backward

_ops = torch.ops.lossext
_below = torch._C._AutoDispatchBelowAutograd


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


def _is_plain_cpu(t: torch.Tensor) -> bool:
    """A real CPU tensor in eager mode, whose value may be read without tracing it."""
    return (
        type(t) is torch.Tensor
        and t.is_cpu
        and not torch.compiler.is_compiling()
        and torch._C._len_torch_dispatch_stack() == 0
        and not torch._C._are_functorch_transforms_active()
    )


# Whether the running backward retains its graph; where torch cannot say, assume it does (the
# backward then scales out of place, always correct).
_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", lambda: True)


def _may_scale_in_place(grad_output: torch.Tensor, grads) -> bool:
    """Whether the eager backward may scale the forward's gradients in place: plain tensors, no
    create_graph, and a graph that is not retained (a second backward would see them scaled)."""
    return (not torch.is_grad_enabled()
            and type(grad_output) is torch.Tensor
            and grad_output.dim() == 0
            and not _keep_graph()
            and torch._C._len_torch_dispatch_stack() == 0
            and all(type(g) is torch.Tensor and g.device == grad_output.device for g in grads))


def _make_autograd(spec, op, bwd):
    arg_names = [a.name for a in op._schema.arguments]
    diff_pos = tuple(arg_names.index(n) for n in spec.diff)
    n_diff = len(spec.diff)
    n_args = len(arg_names)

    # Tensor arguments without a lossext gradient (bce_with_logits' weight and pos_weight, class
    # weights, index targets): one that requires grad raises torch's own error in the forward, as
    # torch's non-differentiable arguments do, instead of silently getting no gradient.
    fixed_pos = tuple(i for i, a in enumerate(op._schema.arguments)
                      if a.name not in spec.diff and str(a.type) in ("Tensor", "Optional[Tensor]"))
    red_pos = arg_names.index("reduction")
    assert arg_names[-1] == "grad_mask", f"lossext::{spec.name}: grad_mask must be the last argument"

    def save(ctx, inputs, output):
        """What the backward needs; shared by the registered autograd and the eager Function.
        ctx.plan = (positions of the arguments that need a gradient, None) when the forward wrote
        those gradients (the backward scales them), else (positions, recompute state)."""
        nig = ctx.needs_input_grad
        if _nested_grad_levels():
            ctx.nested = True
        for p in fixed_pos:
            if nig[p]:
                raise RuntimeError(f"The function '{spec.name}' is not differentiable with respect to argument "
                                   f"'{arg_names[p]}'. This input cannot have requires_grad True.")
        pos = tuple(p for p in diff_pos if nig[p])
        mask = inputs[-1]
        if (inputs[red_pos] != 0 and all(mask[i] for i, p in enumerate(diff_pos) if nig[p])
                and _forward_writes_grads(spec, inputs)):
            ctx.plan = (pos, None)
            ctx.save_for_backward(*[output[1 + i] for i, p in enumerate(diff_pos) if nig[p]])
        else:
            tensor_pos = [i for i, v in enumerate(inputs) if isinstance(v, torch.Tensor)]
            args = [None if i in tensor_pos else v for i, v in enumerate(inputs)]
            ctx.plan = (pos, (tensor_pos, args, [nig[p] for p in diff_pos]))
            ctx.save_for_backward(*[inputs[i] for i in tensor_pos], *output[1 + n_diff:])

    def setup_context(ctx, inputs, output):
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(*output[1:])
        save(ctx, inputs, output)

    def backward(ctx, grad_loss, *unused):
        pos, state = ctx.plan
        result = [None] * n_args
        if grad_loss is None or not pos:
            return tuple(result)
        saved = ctx.saved_tensors
        if state is None:
            if _is_plain_cpu(grad_loss) and grad_loss.item() == 1.0:
                for p, g in zip(pos, saved):
                    result[p] = g
            elif getattr(ctx, "private", False) and _may_scale_in_place(grad_loss, saved):
                # Nothing but this node holds the forward's gradients, and it lets them go after
                # this backward: scale them in place (on CUDA a no-op decided on the device when
                # grad_output is 1, so loss.backward() costs no pass over the gradient at all).
                with _below():
                    for p, g in zip(pos, saved):
                        _ops.scale_grad_(g, grad_loss)
                        result[p] = g
            else:
                with _below():
                    for p, g in zip(pos, saved):
                        result[p] = _ops.scale_grad(g, grad_loss)
            return tuple(_no_double_backward(spec.name, result, getattr(ctx, 'nested', False)))
        tensor_pos, args, needs = state
        args = list(args)
        for i, p in enumerate(tensor_pos):
            args[p] = saved[i]
        aux = saved[len(tensor_pos):]
        # args = forward args; drop the trailing grad_mask, append aux and the backward's mask.
        with _below():
            grads = bwd(grad_loss, *args[:-1], *aux, needs)
        if isinstance(grads, torch.Tensor):  # a single differentiable argument
            grads = (grads,)
        for p, nd, g in zip(diff_pos, needs, grads):
            if nd:
                result[p] = g
        return tuple(_no_double_backward(spec.name, result, getattr(ctx, 'nested', False)))

    return setup_context, backward, save


def _make_eager_call(op, save_fn, setup_fn, backward_fn):
    """The functionals' entry point for an op.

    The op's autograd is the one registered with torch.library.register_autograd; torch.compile,
    C++/dispatcher callers and opcheck go through it. That generic wrapper re-binds the schema on
    every call (~30 us on the CPU here), which at small sizes would make a loss slower than torch
    eager. So in eager mode, when a gradient is wanted, the functionals call the op through this
    small autograd.Function instead: same setup_context and backward, one redispatch below
    autograd, no re-binding.
    """

    class Fn(torch.autograd.Function):
        # Old-style forward(ctx, ...): a separate setup_context makes Function.apply bind the
        # signature with inspect on every call. Only the loss is an output of the Function (the
        # op's other outputs are saved state), which keeps apply's output wrapping short.
        @staticmethod
        def forward(ctx, *args):
            with _below():
                out = op(*args)
            save_fn(ctx, args, out)
            ctx.private = True  # the op's other outputs never leave this Function
            return out[0]

        backward = staticmethod(backward_fn)

    class FnTransforms(torch.autograd.Function):
        # For torch.func transforms (grad, jacrev, vmap of a gradient...), which need a forward
        # without ctx and a setup_context; slower to apply, so only used under them.
        generate_vmap_rule = True

        @staticmethod
        def forward(*args):
            with _below():
                return op(*args)

        setup_context = staticmethod(setup_fn)
        backward = staticmethod(backward_fn)

    # Function.apply's Python wrapper only matters under functorch transforms (it routes them to
    # custom_function_call); elsewhere it unwraps dead functorch wrappers and calls this C++ apply.
    # Calling it directly saves ~3 us a call.
    base_apply = getattr(torch._C._FunctionBase, "__dict__", {}).get("apply")
    fast_apply = base_apply.__get__(None, Fn) if base_apply is not None else Fn.apply

    def call(*args):
        """The op's outputs as a tuple whose first element is the loss."""
        if torch.compiler.is_compiling():
            return op(*args)
        if torch.is_grad_enabled() and (any(args[-1]) or any(isinstance(a, torch.Tensor) and a.requires_grad
                                                            for a in args)):
            if torch._C._are_functorch_transforms_active():
                return FnTransforms.apply(*args)
            if not all(type(a) is torch.Tensor for a in args if isinstance(a, torch.Tensor)):
                return (Fn.apply(*args),)
            return (fast_apply(*args),)
        # No gradient wanted: skip the registered autograd kernel, a Python function that binds the
        # schema on every call (~12 us here, twice the op itself at N=64).
        with _below():
            return op(*args)

    return call


CALLS: dict = {}


def register(spec: LossSpec) -> LossSpec:
    op = getattr(_ops, spec.name).default
    bwd = getattr(_ops, spec.name + "_backward").default
    torch.library.register_fake(f"lossext::{spec.name}")(_make_fake_forward(spec, op))
    torch.library.register_fake(f"lossext::{spec.name}_backward")(_make_fake_backward(spec, bwd))
    SPECS[spec.name] = spec
    setup_context, backward, save = _make_autograd(spec, op, bwd)
    torch.library.register_autograd(f"lossext::{spec.name}", backward, setup_context=setup_context)
    CALLS[spec.name] = _make_eager_call(op, save, setup_context, backward)
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


def call(name: str, *args):
    """Runs lossext::<name>(*args) (positional, grad_mask last) with autograd; see _make_eager_call."""
    return CALLS[name](*args)


@torch.library.register_fake("lossext::scale_grad")
def _scale_grad_fake(grad, grad_output):
    return torch.empty_like(grad)


@torch.library.register_fake("lossext::scale_grad_")
def _scale_grad_inplace_fake(grad, grad_output):
    return None


def register_all(specs: Sequence[LossSpec]) -> None:
    for s in specs:
        register(s)
