"""l1_loss, mse_loss, huber_loss, smooth_l1_loss, soft_margin_loss against torch.

One table (SPECS) drives every test: each row names the functional and module, its option sets,
whether it takes a weight, and what torch differentiates. The coverage per loss follows
test_bce_with_logits.py: values and gradients of input, target and weight on random data over
shapes, reductions, dtypes and devices; broadcasting both ways (which exercises sum_to_size);
strided/expanded operands; dtype promotion; edge values; errors; opcheck; torch.compile;
gradcheck; modules; every CPU ISA; determinism.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, TOL, assert_close, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext


def soft_margin_ref(input, target, size_average=None, reduce=None, reduction="mean"):
    """torch's soft_margin_loss; where the target requires grad (torch refuses to differentiate
    it) the same formula, log1p(exp(-x y)), spelled with torch ops."""
    if not target.requires_grad:
        return F.soft_margin_loss(input, target, reduction=reduction)
    loss = torch.log1p(torch.exp(-input * target))
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def _normal_target(shape, dtype, device):
    return torch.randn(shape, dtype=dtype, device=device)


def _label_target(shape, dtype, device):
    """Labels +-1, scaled by a random factor in half the cases."""
    y = torch.randint(0, 2, shape, device=device).to(dtype) * 2 - 1
    return y * (torch.rand(shape, device=device, dtype=dtype) + 0.5) if torch.rand(()) < 0.5 else y


@dataclass(frozen=True)
class Spec:
    name: str
    module: str
    # (x, t, w, reduction, options, grad_mask) -> the positional args of the lossext op
    op_args: Callable
    options: tuple = ({},)          # keyword options, each crossed with everything else
    weight: bool = False            # takes weight= (input-shaped, differentiable)
    target_within_input: bool = False  # the target may not broadcast the input to a larger shape
    module_kwargs: dict = field(default_factory=dict)
    ref: Optional[Callable] = None  # torch's functional of the same name unless given
    target: Callable = _normal_target  # (shape, dtype, device) -> a typical target

    @property
    def ours(self):
        return getattr(LF, self.name)

    @property
    def torch_ref(self):
        return self.ref or getattr(F, self.name)

    @property
    def op(self):
        return getattr(OPS, self.name)

    def __str__(self):
        return self.name


SPECS = [
    Spec("l1_loss", "L1Loss", lambda x, t, w, red, opt, mask: (x, t, w, red, mask), weight=True),
    Spec("mse_loss", "MSELoss", lambda x, t, w, red, opt, mask: (x, t, w, red, mask), weight=True),
    Spec("huber_loss", "HuberLoss", lambda x, t, w, red, opt, mask: (x, t, w, red, opt.get("delta", 1.0), mask),
         ({}, {"delta": 0.3}, {"delta": 2.5}), weight=True, module_kwargs={"delta": 0.5}),
    Spec("smooth_l1_loss", "SmoothL1Loss",
         lambda x, t, w, red, opt, mask: (x, t, red, opt.get("beta", 1.0), mask[:2]),
         ({}, {"beta": 0.25}, {"beta": 0.0}), module_kwargs={"beta": 0.5}),
    Spec("soft_margin_loss", "SoftMarginLoss", lambda x, t, w, red, opt, mask: (x, t, red, mask[:2]),
         target_within_input=True, ref=soft_margin_ref, target=_label_target),
]
SPEC_PARAMS = [pytest.param(s, id=s.name) for s in SPECS]
WEIGHTED = [pytest.param(s, id=s.name) for s in SPECS if s.weight]

SHAPES = [(), (0,), (7,), (4, 5), (2, 3, 4), (3, 0, 2), (129, 67)]


def _target(spec, shape, dtype, device):
    return spec.target(shape, dtype, device)


def _input(shape, dtype, device):
    return torch.randn(shape, dtype=dtype, device=device)


def _weight(shape, dtype, device):
    return torch.rand(shape, dtype=dtype, device=device) + 0.5


def _check(spec, x, t, w, reduction, opt, dtype=None, check_dtype=True):
    """check_loss over input, target (and weight): values and the gradient of each."""
    if w is None:
        return check_loss(lambda x, t: spec.ours(x, t, reduction=reduction, **opt),
                          lambda x, t: spec.torch_ref(x, t, reduction=reduction, **opt),
                          [x, t], diff=(0, 1), dtype=dtype, check_dtype=check_dtype)
    return check_loss(lambda x, t, w: spec.ours(x, t, reduction=reduction, weight=w, **opt),
                      lambda x, t, w: spec.torch_ref(x, t, reduction=reduction, weight=w, **opt),
                      [x, t, w], diff=(0, 1, 2), dtype=dtype, check_dtype=check_dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_matches_torch(spec, shape, reduction, dtype, device):
    for opt in spec.options:
        for weighted in ([False, True] if spec.weight else [False]):
            x, t = _input(shape, dtype, device), _target(spec, shape, dtype, device)
            w = _weight(shape, dtype, device) if weighted else None
            _check(spec, x, t, w, reduction, opt)


# (input shape, target shape): the gradients of the smaller operand are summed by sum_to_size.
BROADCAST_PAIRS = [
    ((3, 1), (3, 4)), ((3, 4), (3, 1)), ((4,), (3, 4)), ((3, 4), (4,)), ((), (5,)), ((5,), ()),
    ((2, 1, 3), (1, 4, 1)), ((1,), (0,)), ((2, 0, 1), (2, 1, 3)), ((6, 1, 5, 1), (6, 4, 5, 3)),
    ((1, 4, 1, 3), (6, 4, 5, 3)), ((2, 3, 1, 1, 1), (1, 1, 2, 3, 2)),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_broadcasting(spec, reduction, device):
    for xs, ts in BROADCAST_PAIRS:
        bshape = torch.broadcast_shapes(xs, ts)
        for dtype in (torch.float64, torch.float32):
            x, t = _input(xs, dtype, device), _target(spec, ts, dtype, device)
            if spec.target_within_input and bshape != torch.Size(xs):
                with pytest.raises(RuntimeError, match=f"{spec.name}: .*shape"):
                    spec.ours(x, t, reduction=reduction)
                continue
            for opt in spec.options:
                w = _weight(xs, dtype, device) if spec.weight else None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _check(spec, x, t, w, reduction, opt)


@pytest.mark.parametrize("spec", [s for s in SPEC_PARAMS if not s.values[0].target_within_input])
def test_broadcast_warning(spec):
    x, t = torch.randn(3, 1), torch.randn(3, 4)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        spec.ours(x, t)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        spec.torch_ref(x, t)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert [w.category for w in ours] == [UserWarning]
    assert ours[0].filename == __file__, "stacklevel: the warning must point at the caller"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec.ours(x, x)  # same sizes: no warning


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_sum_to_size_through_losses(spec, device):
    # Broadcast gradients summed to the operand's shape: many reduced elements per output (the
    # float32 sum must stay accurate), one output for everything, and half types.
    cases = [((1, 513), (2001, 513), torch.float32), ((), (300_001,), torch.float32),
             ((257, 1), (257, 1000), torch.float32), ((1, 64), (4096, 64), torch.bfloat16),
             ((3, 1, 5), (3, 40, 5), torch.float16)]
    for xs, ts, dtype in cases:
        if spec.target_within_input:
            xs, ts = ts, xs
        x, t = _input(xs, dtype, device), _target(spec, ts, dtype, device)
        w = _weight(xs, dtype, device) if spec.weight else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _check(spec, x, t, w, "sum", spec.options[-1], check_dtype=False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_strided_and_expanded(spec, reduction, device):
    opt = spec.options[-1]
    x = torch.randn(40, 30, device=device).t()                      # transposed
    t = _target(spec, (30, 1), torch.float32, device).expand(30, 40)  # stride-0 view
    w = (torch.rand(2400, device=device)[::2] + 0.5).view(30, 40) if spec.weight else None  # strided
    _check(spec, x, t, w, reduction, opt)
    xs = torch.randn(8, 6, 10, device=device)[:, ::2, 1:9]           # sliced, non-mergeable dims
    ts = _target(spec, (8, 3, 8), torch.float32, device)
    ws = torch.rand(8, 3, 8, device=device).transpose(0, 2).contiguous().transpose(0, 2) if spec.weight else None
    _check(spec, xs, ts, ws, reduction, opt)
    xc = torch.randn(2, 3, 5, 4, device=device).to(memory_format=torch.channels_last)
    tc = _target(spec, (2, 3, 5, 4), torch.float32, device)
    out = _check(spec, xc, tc, None, "none", opt)
    assert out.shape == xc.shape
    # The driver reads views in place: the caller's tensors are never copied or written.
    before = (x.clone(), t.clone())
    spec.ours(x, t, reduction=reduction, **opt)
    assert torch.equal(x, before[0]) and torch.equal(t, before[1])


def _coarsest(*dtypes):
    """The dtype whose tolerance bounds a comparison of results in all of `dtypes`."""
    return max(dtypes, key=TOL.__getitem__)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_dtype_promotion(spec, device):
    pairs = [(torch.float32, torch.float64), (torch.float64, torch.float32), (torch.float16, torch.float32),
             (torch.float32, torch.float16), (torch.bfloat16, torch.float16), (torch.float16, torch.bfloat16)]
    for dx, dt in pairs:
        for reduction in REDUCTIONS:
            x, t = _input((6, 5), dx, device), _target(spec, (6, 5), dt, device)
            _check(spec, x, t, None, reduction, spec.options[-1], dtype=_coarsest(dx, dt))
            if spec.weight:
                for dw in (torch.float64, torch.float16):
                    _check(spec, x, t, _weight((6, 5), dw, device), reduction, spec.options[-1],
                           dtype=_coarsest(dx, dt, dw))


@pytest.mark.parametrize("spec", WEIGHTED)
def test_zero_dim_weight_promotion(spec):
    # torch's `loss * weight` with a 0-d weight (the input is 0-d) and a target with dimensions:
    # the weight does not promote, except through the 0-d sums of l1/mse's weighted mean.
    x, t, w = torch.tensor(0.5), torch.randn(5), torch.tensor(2.0, dtype=torch.float64)
    for reduction in REDUCTIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = spec.ours(x, t, reduction=reduction, weight=w)
            b = spec.torch_ref(x, t, reduction=reduction, weight=w)
        assert a.dtype == b.dtype, (reduction, a.dtype, b.dtype)
        assert_close(a, b, torch.float32, reduction)


@pytest.mark.parametrize("device", DEVICES)
def test_edge_values_match_torch(device):
    nan, inf = float("nan"), float("inf")
    x = torch.tensor([nan, 0.0, 1.0, inf, -inf, inf, 2.0, 0.3, -0.3, 1.0, -1.0, 0.25, -0.25], device=device)
    t = torch.tensor([0.0, 0.0, nan, inf, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], device=device)
    # zero differences (L1: sign(0) = 0), NaN, infinities, and |d| exactly at delta/beta.
    cases = [("l1_loss", {}), ("mse_loss", {}), ("huber_loss", {}), ("huber_loss", {"delta": 0.3}),
             ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0}), ("smooth_l1_loss", {"beta": 0.25})]
    for name, opt in cases:
        for reduction in ("none", "sum"):
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            a = getattr(LF, name)(xa, t, reduction=reduction, **opt)
            b = getattr(F, name)(xb, t, reduction=reduction, **opt)
            torch.testing.assert_close(a, b, equal_nan=True, msg=f"{name} {opt} {reduction}")
            ga, = torch.autograd.grad(a.sum(), xa)
            gb, = torch.autograd.grad(b.sum(), xb)
            torch.testing.assert_close(ga, gb, equal_nan=True, msg=f"grad {name} {opt} {reduction}")


@pytest.mark.parametrize("device", DEVICES)
def test_soft_margin_is_stable(device):
    # Deliberate deviation: torch computes log1p(exp(-x y)), which overflows to inf (and a NaN
    # gradient) for x y < -88 in float32; lossext's softplus form gives the finite answer.
    x = torch.tensor([-1000.0, 1000.0, -100.0, 0.0, 50.0], device=device, requires_grad=True)
    y = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0], device=device, requires_grad=True)
    loss = LF.soft_margin_loss(x, y, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([1000.0, 0.0, 100.0, 0.6931472, 50.0], device=device))
    gx, gy = torch.autograd.grad(loss.sum(), (x, y))
    torch.testing.assert_close(gx, torch.tensor([-1.0, 0.0, -1.0, 0.5, 1.0], device=device))
    torch.testing.assert_close(gy, torch.tensor([1000.0, -0.0, 100.0, 0.0, -50.0], device=device))
    assert torch.isinf(F.soft_margin_loss(x.detach(), y.detach(), reduction="none")[0])  # torch's overflow
    # Where torch is finite, both agree (including the NaN of a NaN input).
    xs = torch.tensor([-20.0, -3.0, 0.0, 3.0, 20.0, float("nan")], device=device, requires_grad=True)
    ys = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0], device=device)
    a = LF.soft_margin_loss(xs, ys, reduction="none")
    b = F.soft_margin_loss(xs, ys, reduction="none")
    torch.testing.assert_close(a, b, equal_nan=True)
    torch.testing.assert_close(torch.autograd.grad(a.sum(), xs)[0], torch.autograd.grad(b.sum(), xs)[0],
                               equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_empty(spec, device):
    for shape in [(0,), (2, 0)]:
        x = torch.randn(shape, device=device, requires_grad=True)
        t = torch.randn(shape, device=device)
        assert torch.isnan(spec.ours(x, t)), "mean of nothing is NaN"
        s = spec.ours(x, t, reduction="sum")
        assert s.item() == 0.0
        assert torch.autograd.grad(s, x)[0].shape == shape
        assert spec.ours(x, t, reduction="none").shape == shape


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    x, y = torch.randn(3, 4, device=device), torch.randn(3, 5, device=device)
    for spec in SPECS:
        for f in (spec.torch_ref, spec.ours):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(RuntimeError):
                    f(x, y)
            with pytest.raises(ValueError, match="is not a valid value for reduction"):
                f(x, x, reduction="avg")
            if spec.weight:
                with pytest.raises(ValueError, match="Weights and input must have the same size"):
                    f(x, x, weight=torch.rand(4, device=device))
                with pytest.raises(ValueError, match="Invalid reduction mode: avg"):
                    f(x, x, weight=torch.rand(3, 4, device=device), reduction="avg")
        # Ours name the op and the shapes.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RuntimeError, match=rf"{spec.name}: .*\[3, 4\].*\[3, 5\]"):
                spec.ours(x, y)
    for f in (F.huber_loss, LF.huber_loss):
        for delta in (0.0, -1.0, float("nan")):
            with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values for delta"):
                f(x, x, delta=delta)
    for f in (F.smooth_l1_loss, LF.smooth_l1_loss):
        for beta in (-1.0, float("nan")):
            with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for beta"):
                f(x, x, beta=beta)
    for f in (F.soft_margin_loss, LF.soft_margin_loss):
        with pytest.raises(RuntimeError):
            f(torch.randn(3, 1, device=device), torch.randn(3, 4, device=device))
    # The ops themselves (C++ callers) raise the same types and name themselves.
    with pytest.raises(ValueError, match="mse_loss: reduction"):
        OPS.mse_loss(x, x, None, 5, [False, False, False])
    with pytest.raises(ValueError, match=r"l1_loss: Weights and input.*\[4\].*\[3, 4\]"):
        OPS.l1_loss(x, x, torch.rand(4, device=device), 1, [False, False, False])
    # Integer operands are promoted as torch (tests/test_dtype_rules.py); complex ones are not.
    with pytest.raises(NotImplementedError, match="smooth_l1_loss: complex inputs are not supported"):
        OPS.smooth_l1_loss(x.to(torch.complex64), x, 1, 1.0, [False, False])
    with pytest.raises(NotImplementedError, match="huber_loss: not implemented for integer input"):
        OPS.huber_loss(x.long(), x.long(), None, 1, 1.0, [False, False, False])


@pytest.mark.parametrize("spec", [s for s in SPEC_PARAMS if s.values[0].name != "huber_loss"])
def test_legacy_reduction_args(spec):
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    for legacy, reduction in [({"size_average": False}, "sum"), ({"reduce": False}, "none"),
                              ({"size_average": True, "reduce": True}, "mean")]:
        with pytest.warns(UserWarning):
            a = spec.ours(x, y, **legacy)
        torch.testing.assert_close(a, spec.torch_ref(x, y, reduction=reduction))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_opcheck(spec, device):
    opt = spec.options[-1]
    # Same shapes (with a weight where the loss takes one), then a broadcast pair.
    bcast = ((6, 5), (5,)) if spec.target_within_input else ((6, 1), (6, 5))
    for (xs, ts), weighted in [(((6, 5), (6, 5)), spec.weight), (bcast, False)]:
        x = torch.randn(xs, device=device, requires_grad=True)
        t = _target(spec, ts, torch.float32, device).requires_grad_()
        w = torch.rand(xs, device=device, requires_grad=True) if weighted else None
        shape = torch.broadcast_shapes(xs, ts)
        for red in (0, 1, 2):
            for mask in ([True, False, True], [False, False, False], [True, True, True]):
                opcheck(spec.op.default, spec.op_args(x, t, w, red, opt, mask))
            go = torch.randn((), device=device) if red else torch.randn(shape, device=device)
            bargs = spec.op_args(x.detach(), t.detach(), None if w is None else w.detach(), red, opt,
                                 [True, True, True])
            opcheck(getattr(OPS, spec.name + "_backward").default, (go, *bargs))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_backward_op_matches_torch(spec, device):
    # The backward op recomputes the gradients from the inputs (autograd uses it for reduction
    # 'none', and whenever the forward did not compute them in its pass): grad_output * d loss.
    opt = spec.options[-1]
    bcast = ((6, 5), (5,)) if spec.target_within_input else ((6, 1), (6, 5))
    for xs, ts in [((6, 5), (6, 5)), bcast]:
        for weighted in ([False, True] if spec.weight else [False]):
            for red, rname in enumerate(REDUCTIONS):
                x = torch.randn(xs, dtype=torch.float64, device=device, requires_grad=True)
                t = _target(spec, ts, torch.float64, device).requires_grad_()
                w = _weight(xs, torch.float64, device).requires_grad_() if weighted else None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kw = dict(opt, reduction=rname, **({"weight": w} if weighted else {}))
                    ref = spec.torch_ref(x, t, **kw)
                go = torch.randn(ref.shape, dtype=torch.float64, device=device)
                leaves = [x, t] + ([w] if weighted else [])
                expected = torch.autograd.grad(ref, leaves, go)
                args = spec.op_args(x.detach(), t.detach(), None if w is None else w.detach(), red, opt,
                                    [True, True, True])
                got = getattr(OPS, spec.name + "_backward")(go, *args)
                for i, (g, e) in enumerate(zip(got, expected)):
                    assert_close(g, e, torch.float64, f"{spec.name} {rname} {xs} {ts} grad {i}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_compile_fullgraph(spec, reduction, device):
    torch._dynamo.reset()
    opt = spec.options[-1]
    x = torch.randn(6, 5, device=device, requires_grad=True)
    t = _target(spec, (6, 5), torch.float32, device)
    kw = dict(opt, reduction=reduction)
    if spec.weight:
        kw["weight"] = torch.rand(6, 5, device=device) + 0.5
    f = torch.compile(spec.ours, fullgraph=True)
    a = f(x, t, **kw)
    b = spec.ours(x, t, **kw)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    torch.testing.assert_close(torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, x, g)[0])
    # Broadcasting (the functional's warning path) compiles as one graph too.
    xb = torch.randn(6, 1, device=device, requires_grad=True)
    tb = _target(spec, (6, 5), torch.float32, device)
    if spec.target_within_input:
        xb, tb = tb.clone().requires_grad_(), torch.randn(6, 1, device=device)
    kw.pop("weight", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = f(xb, tb, **kw), spec.torch_ref(xb, tb, **kw)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.autograd.grad(a.sum(), xb)[0], torch.autograd.grad(b.sum(), xb)[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_gradcheck(spec, reduction):
    for opt in spec.options:
        for xs, ts in [((4, 3), (4, 3)), ((4, 1), (4, 3)), ((4, 3), (3,))]:
            if spec.target_within_input and torch.broadcast_shapes(xs, ts) != torch.Size(xs):
                continue
            x = torch.randn(xs, dtype=torch.float64, requires_grad=True)
            t = (torch.randn(ts, dtype=torch.float64) * 2).requires_grad_()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if spec.weight:
                    w = (torch.rand(xs, dtype=torch.float64) + 0.5).requires_grad_()
                    f = (lambda x, t, w: spec.ours(x, t, reduction=reduction, weight=w, **opt))
                    assert torch.autograd.gradcheck(f, (x, t, w))
                else:
                    assert torch.autograd.gradcheck(lambda x, t: spec.ours(x, t, reduction=reduction, **opt), (x, t))


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_module_is_drop_in(spec):
    for kwargs in [{}, dict(spec.module_kwargs, reduction="sum"), {"reduction": "none"}]:
        ours = getattr(lossext.nn, spec.module)(**kwargs)
        theirs = getattr(torch.nn, spec.module)(**kwargs)
        assert isinstance(ours, getattr(torch.nn, spec.module))
        assert repr(ours) == repr(theirs)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        x = torch.randn(3, 5, requires_grad=True)
        t = _target(spec, (3, 5), torch.float32, "cpu")
        a, b = ours(x, t), theirs(x, t)
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape)
        torch.testing.assert_close(torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, x, g)[0])


def test_deterministic_across_threads():
    # Fixed chunks, double partials added in order: same bits for any thread count, including the
    # broadcast gradients summed by sum_to_size (one output; columns; rows; many small sums).
    cases = [((1_000_003,), (1_000_003,)), ((), (1_000_003,)), ((1, 513), (2001, 513)),
             ((2001, 1), (2001, 513)), ((100_003, 1), (100_003, 3))]
    threads = torch.get_num_threads()
    try:
        for spec in SPECS:
            for xs, ts in cases:
                if spec.target_within_input:
                    xs, ts = ts, xs
                x = torch.randn(xs, requires_grad=True)
                t = torch.randn(ts, requires_grad=True)
                results = []
                for n in (1, 2, 3):
                    torch.set_num_threads(n)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        loss = spec.ours(x, t)
                    results.append((loss, *torch.autograd.grad(loss, (x, t))))
                for r in results[1:]:
                    for a, b in zip(results[0], r):
                        assert torch.equal(a, b), (spec.name, xs, ts)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("device", DEVICES)
def test_large_mean(device):
    # Many elements: the deterministic blocked sum must stay accurate in float32.
    x = torch.randn(3_000_001, device=device)
    t = torch.randn(3_000_001, device=device)
    for spec in SPECS:
        check_loss(lambda x, t: spec.ours(x, t), lambda x, t: spec.torch_ref(x, t), [x, t], diff=(0,))
        assert torch.equal(spec.ours(x, t), spec.ours(x, t)), f"{spec.name}: reduction is not deterministic"


def test_every_isa():
    code = (
        "import torch, warnings, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "warnings.simplefilter('ignore')\n"
        "x = torch.randn(37, 53, dtype=torch.float64); t = torch.randn(37, 1, dtype=torch.float64)\n"
        "w = torch.rand(37, 53, dtype=torch.float64)\n"
        "cases = [('l1_loss', {'weight': w}), ('mse_loss', {'weight': w}), ('huber_loss', {'delta': 0.5}),\n"
        "         ('smooth_l1_loss', {'beta': 0.5}), ('smooth_l1_loss', {'beta': 0.0}), ('soft_margin_loss', {})]\n"
        "for name, kw in cases:\n"
        "    for dt in (torch.float64, torch.float32, torch.bfloat16):\n"
        "        for red in ('sum', 'none'):\n"
        "            xa = x.to(dt).requires_grad_(); xb = x.to(dt).double().requires_grad_()\n"
        "            kwa = {k: (v.to(dt) if torch.is_tensor(v) else v) for k, v in kw.items()}\n"
        "            kwb = {k: (v.to(dt).double() if torch.is_tensor(v) else v) for k, v in kw.items()}\n"
        "            a = getattr(LF, name)(xa, t.to(dt), reduction=red, **kwa)\n"
        "            b = getattr(F, name)(xb, t.to(dt).double(), reduction=red, **kwb)\n"
        "            err = (a.double() - b).abs().max()\n"
        "            assert err <= 1e-2 * (1 + b.abs().max()), (name, dt, red, err)\n"
        "            ga = torch.autograd.grad(a.sum(), xa)[0].double(); gb = torch.autograd.grad(b.sum(), xb)[0]\n"
        "            assert (ga - gb).abs().max() <= 1e-2 * (1 + gb.abs().max()), (name, dt, red, 'grad')\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
