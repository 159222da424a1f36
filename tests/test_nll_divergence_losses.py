"""poisson_nll_loss, gaussian_nll_loss and kl_div against torch, driven by one spec table.

Each spec yields cases (tensor args, extra positional args, options, differentiable args) for a
shape; the table is crossed with dtypes, reductions and devices. gaussian_nll_loss's cases cover
every variance shape torch accepts, so the broadcast var gradient (summed back by sum_to_size) is
checked for every shape as well.
"""
import itertools
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext

SHAPES = [(), (0,), (7,), (4, 5), (2, 3, 4), (3, 0, 2), (129, 67)]


def _poisson_cases(shape, dtype, device):
    for log_input, full in itertools.product((True, False), (False, True)):
        x = torch.randn(shape, device=device) if log_input else torch.rand(shape, device=device) * 3 + 0.01
        # Counts and halves: 0 and 1 sit on the Stirling mask, 0 gives torch's NaN target gradient.
        t = (torch.rand(shape, device=device) * 6).floor() * 0.5
        eps = 0.05 if full else 1e-8
        yield [x.to(dtype), t.to(dtype)], (), dict(log_input=log_input, full=full, eps=eps), (0, 1)


def _var_shapes(shape):
    out = {"same": shape}
    if len(shape) >= 1:
        out["without_last"] = shape[:-1]   # unsqueezed by torch
        out["last_1"] = shape[:-1] + (1,)  # homoscedastic per sample
    if len(shape) >= 2:
        out["first_1"] = (1,) + shape[1:]  # one mismatched dimension
    return out


def _gaussian_cases(shape, dtype, device):
    for full, eps, fvar in ((False, 1e-6, 0.7), (True, 0.1, 0.05)):
        # Small residuals: a float16 sum over the largest shape stays finite.
        x = (torch.randn(shape, device=device) * 0.5).to(dtype)
        t = (torch.randn(shape, device=device) * 0.5).to(dtype)
        for vshape in _var_shapes(shape).values():
            # Away from 0 so half types do not overflow; with eps=0.1 part of it is clamped.
            v = (torch.rand(vshape, device=device) * 0.95 + 0.05).to(dtype)
            yield [x, t, v], (), dict(full=full, eps=eps), (0, 1, 2)
        yield [x, t], (fvar,), dict(full=full, eps=eps), (0, 1)  # float var (clamped in the 2nd)


def _kl_cases(shape, dtype, device):
    for log_target in (False, True):
        x = torch.randn(shape, device=device) - 1
        if log_target:
            t = torch.randn(shape, device=device) - 1
        else:  # some exact zeros: xlogy gives 0, torch's target gradient NaN
            t = torch.rand(shape, device=device)
            t = torch.where(torch.rand(shape, device=device) < 0.2, torch.zeros_like(t), t)
        yield [x.to(dtype), t.to(dtype)], (), dict(log_target=log_target), (0, 1)


@dataclass(frozen=True)
class Spec:
    name: str
    ours: Callable
    ref: Callable
    reductions: tuple
    cases: Callable  # (shape, dtype, device) -> iterable of (tensors, extra args, options, diff)
    n_tensors: int = 2  # tensor operands broadcast together (gaussian: input, target, var)
    strided_options: dict = field(default_factory=dict)  # options of the strided-views test


SPECS = [
    Spec("poisson_nll_loss", LF.poisson_nll_loss, F.poisson_nll_loss, ("none", "mean", "sum"), _poisson_cases,
         strided_options=dict(log_input=False, full=True)),
    Spec("gaussian_nll_loss", LF.gaussian_nll_loss, F.gaussian_nll_loss, ("none", "mean", "sum"), _gaussian_cases,
         n_tensors=3),
    Spec("kl_div", LF.kl_div, F.kl_div, ("none", "mean", "sum", "batchmean"), _kl_cases),
]
SPEC_REDUCTIONS = [pytest.param(s, r, id=f"{s.name}-{r}") for s in SPECS for r in s.reductions]

pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _check(spec, tensors, extra, opts, diff, reduction, dtype=None, **kw):
    return check_loss(lambda *a: spec.ours(*a, *extra, reduction=reduction, **opts),
                      lambda *a: spec.ref(*a, *extra, reduction=reduction, **opts),
                      tensors, diff=diff, dtype=dtype, **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("spec,reduction", SPEC_REDUCTIONS)
def test_matches_torch(spec, reduction, dtype, device):
    for shape in SHAPES:
        for tensors, extra, opts, diff in spec.cases(shape, dtype, device):
            _check(spec, tensors, extra, opts, diff, reduction, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,reduction", SPEC_REDUCTIONS)
def test_broadcast_operands(spec, reduction, device):
    # torch's composite losses broadcast input and target (either way round).
    for xs, ts in [((4, 5), (5,)), ((5,), (3, 5)), ((3, 1, 5), (4, 1)), ((2, 3), ())]:
        x = torch.rand(xs, device=device, dtype=torch.float64) + 0.1
        t = torch.rand(ts, device=device, dtype=torch.float64) * 2
        extra = [torch.rand(xs, device=device, dtype=torch.float64) + 0.1 for _ in range(spec.n_tensors - 2)]
        tensors = [x, t, *extra]
        _check(spec, tensors, (), {}, tuple(range(len(tensors))), reduction)


def _no_copies(fn):
    """fn() runs without copying or converting any operand (the driver walks the strides)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    names = {e.name for e in prof.events()}
    bad = names & {"aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::to"}
    assert not bad, f"copies on lossext's path: {sorted(bad)}"


def _strided_views(x, t, v):
    """(input, target, var) views of the bases x (40, 30), t (30, 1), v (80,)."""
    return [
        # transposed input, expanded (stride 0) target, strided + expanded var (input's shape)
        (x.t(), t.expand(30, 40), v[::2].expand(30, 40)),
        # sliced input with a non-mergeable dimension; expanded target and var
        (x[1::2, :28].unflatten(1, (4, 7)), t[:20].expand(20, 28).unflatten(1, (4, 7)),
         v[:28].view(1, 4, 7).expand(20, 4, 7)),
        # channels-last input (2, 30, 4, 5); per-channel target; var with one broadcast dimension
        (x.view(2, 4, 5, 30).permute(0, 3, 1, 2), t.view(1, 30, 1, 1), v[:40].view(2, 1, 4, 5)),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,reduction", SPEC_REDUCTIONS)
def test_strided_and_expanded(spec, reduction, device):
    n, opts = spec.n_tensors, spec.strided_options
    bases = [torch.rand(40, 30, device=device, dtype=torch.float64) + 0.05,
             torch.rand(30, 1, device=device, dtype=torch.float64) * 3,
             torch.rand(80, device=device, dtype=torch.float64) + 0.05]
    leaves = [b.clone().requires_grad_() for b in bases]
    ref_leaves = [b.clone().requires_grad_() for b in bases]
    for k, (ours_in, ref_in) in enumerate(zip(_strided_views(*leaves), _strided_views(*ref_leaves))):
        out = spec.ours(*ours_in[:n], reduction=reduction, **opts)
        ref = spec.ref(*ref_in[:n], reduction=reduction, **opts)
        torch.testing.assert_close(out, ref, msg=lambda m: f"views {k}: {m}")
        # An unreduced loss takes the layout of a dense input (transposed, channels-last). torch's
        # layout depends on how its composite ops meet the target's strides; values are what count.
        if reduction == "none" and k != 1:
            assert out.stride() == ours_in[0].stride(), f"views {k}: stride {out.stride()}"
        g = torch.randn(out.shape, device=device, dtype=out.dtype)
        ga = torch.autograd.grad(out, leaves[:n], g)
        gr = torch.autograd.grad(ref, ref_leaves[:n], g)
        for i, (a, b) in enumerate(zip(ga, gr)):
            torch.testing.assert_close(a, b, msg=lambda m: f"views {k}, grad {i}: {m}")
        if device == "cpu":
            # The views themselves as leaves: forward and our backward read them in place.
            direct = [a.detach().requires_grad_() for a in ours_in[:n]]
            _no_copies(lambda: torch.autograd.grad(spec.ours(*direct, reduction=reduction, **opts), direct,
                                                   torch.randn_like(out)))


# --- edge values: torch's exact NaN/inf behaviour ------------------------------------------------
def _values_and_grads(fn, *args):
    leaves = [a.clone().requires_grad_() for a in args]
    out = fn(*leaves)
    return (out, *torch.autograd.grad(out.sum(), leaves))


def _same(fn_ours, fn_ref, *args):
    for a, b in zip(_values_and_grads(fn_ours, *args), _values_and_grads(fn_ref, *args)):
        torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_special_values(dtype, device):
    inf, nan = float("inf"), float("nan")
    kw = dict(device=device, dtype=dtype)
    # Stirling mask at t <= 1 (NaN target not masked), t = 0 and t < 0 give NaN target grads.
    t = torch.tensor([0.0, 0.5, 1.0, 1.0 + 1e-6, 2.0, 50.0, -1.0, nan, inf, 3.0], **kw)
    x = torch.tensor([0.3, -0.2, 0.1, 0.4, 0.0, 2.0, 0.5, 0.6, 0.7, inf], **kw)
    for log_input, full in itertools.product((True, False), (False, True)):
        xx = x if log_input else x.abs()
        _same(lambda a, b: LF.poisson_nll_loss(a, b, log_input, full, reduction="none"),
              lambda a, b: F.poisson_nll_loss(a, b, log_input, full, reduction="none"), xx, t)
    # kl_div: zero, negative, NaN and infinite targets; infinite log-probabilities.
    t = torch.tensor([0.0, 0.5, -1.0, nan, inf, 1.0, 0.0, -inf], **kw)
    x = torch.tensor([0.3, -inf, 0.1, 0.4, 0.5, inf, -inf, 0.2], **kw)
    for log_target in (False, True):
        _same(lambda a, b: LF.kl_div(a, b, reduction="none", log_target=log_target),
              lambda a, b: F.kl_div(a, b, reduction="none", log_target=log_target), x, t)
    # gaussian_nll_loss: var below eps (clamped, identity gradient), exactly 0, NaN, inf.
    v = torch.tensor([1e-9, 0.0, 1e-6, 0.5, nan, inf, 2.0, 1e-7], **kw)
    x = torch.tensor([0.3, -1.0, 0.1, 0.4, 0.5, 1.0, inf, 0.0], **kw)
    t = torch.tensor([0.0, 0.5, -1.0, 0.4, 1.0, 0.0, 1.0, 0.0], **kw)
    for eps in (1e-6, 0.1, -1.0, 0.0):
        _same(lambda a, b, c: LF.gaussian_nll_loss(a, b, c, eps=eps, reduction="none"),
              lambda a, b, c: F.gaussian_nll_loss(a, b, c, eps=eps, reduction="none"), x, t, v)
    for fvar in (0.0, 1e-9, nan, 0.25):
        _same(lambda a, b: LF.gaussian_nll_loss(a, b, fvar, full=True, reduction="none"),
              lambda a, b: F.gaussian_nll_loss(a, b, fvar, full=True, reduction="none"), x, t)


# --- dtypes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_dtype_promotion(device):
    """Mixed dtypes, 0-d operands of a wider dtype, integer targets: torch's result dtype."""
    f32, f64, f16, bf16, i64 = torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64

    def T(shape, dt, lo=0.1):
        return (torch.rand(shape, device=device) * 3 + lo).to(dt)

    combos = [((5, 4), f32, (5, 4), f64), ((5, 4), f64, (5, 4), f32), ((5, 4), f16, (5, 4), f32),
              ((5, 4), bf16, (5, 4), f16), ((5, 4), f32, (), f64), ((), f64, (5, 4), f32),
              ((5, 4), f16, (), f64)]
    for (xs, xd, ts, td), red in itertools.product(combos, ("none", "sum")):
        x, t = T(xs, xd), T(ts, td)
        for ours, ref, extra in [(LF.poisson_nll_loss, F.poisson_nll_loss, ()),
                                 (LF.kl_div, F.kl_div, ()),
                                 (LF.gaussian_nll_loss, F.gaussian_nll_loss, (T(xs, td),)),
                                 (LF.gaussian_nll_loss, F.gaussian_nll_loss, (0.3,))]:
            a = ours(x, t, *extra, reduction=red)
            b = ref(x, t, *extra, reduction=red)
            assert a.dtype == b.dtype, (ours.__name__, xd, xs, td, ts, a.dtype, b.dtype)
            torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
    # Integer (count) targets and inputs: poisson_nll_loss and gaussian_nll_loss accept them.
    x = torch.rand(6, 3, device=device, requires_grad=True)
    xb = torch.rand(6, 3, device=device) < 0.5
    for t in (torch.randint(0, 5, (6, 3), device=device), xb):
        for log_input, full in itertools.product((True, False), (False, True)):
            if t.dtype == torch.bool and full:  # torch subtracts the bool target: the same error
                _raises_like_torch(LF.poisson_nll_loss, F.poisson_nll_loss, x, t, log_input, full)
                continue
            a = LF.poisson_nll_loss(x, t, log_input, full)
            b = F.poisson_nll_loss(x, t, log_input, full)
            assert a.dtype == b.dtype
            torch.testing.assert_close(a, b)
            torch.testing.assert_close(torch.autograd.grad(a, x)[0], torch.autograd.grad(b, x)[0])
    for log_input, full in itertools.product((True, False), (False, True)):  # bool input
        for t in (x.detach(), xb):
            try:
                b = F.poisson_nll_loss(xb, t, log_input, full)
            except RuntimeError:
                _raises_like_torch(LF.poisson_nll_loss, F.poisson_nll_loss, xb, t, log_input, full)
            else:
                torch.testing.assert_close(LF.poisson_nll_loss(xb, t, log_input, full), b)
    ti = torch.randint(0, 5, (6, 3), device=device)
    a, b = LF.poisson_nll_loss(ti, ti, reduction="none"), F.poisson_nll_loss(ti, ti, reduction="none")
    assert a.dtype == b.dtype == torch.get_default_dtype()
    torch.testing.assert_close(a, b)
    for var in (torch.rand(6, 3, device=device) + 0.1, 0.5):
        a, b = LF.gaussian_nll_loss(x, ti, var), F.gaussian_nll_loss(x, ti, var)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(torch.autograd.grad(a, x)[0], torch.autograd.grad(b, x)[0])
        a, b = LF.gaussian_nll_loss(ti, ti + 1, var), F.gaussian_nll_loss(ti, ti + 1, var)
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


# --- reductions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_kl_batchmean(device):
    # Divides by input.size(0) (not the broadcast batch), by nothing for 0-d input; NaN for an empty batch.
    for xs, ts in [((6, 5), (6, 5)), ((5,), (3, 5)), ((), ()), ((), (4,)), ((0, 3), (0, 3)), ((1, 4), (7, 1, 4))]:
        x = torch.randn(xs, device=device, dtype=torch.float64)
        t = torch.rand(ts, device=device, dtype=torch.float64)
        check_loss(lambda a, b: LF.kl_div(a, b, reduction="batchmean"),
                   lambda a, b: F.kl_div(a, b, reduction="batchmean"), [x, t], diff=(0, 1))


@pytest.mark.parametrize("device", DEVICES)
def test_legacy_reduction_args(device):
    # (With reduction='batchmean' torch's kl_div also divides a legacy none/mean/sum result by the batch.)
    x, t = torch.randn(3, 4, device=device), torch.rand(3, 4, device=device)
    for sa, rd in [(False, None), (None, False), (True, True)]:
        for ours, ref in [(LF.poisson_nll_loss, F.poisson_nll_loss), (LF.kl_div, F.kl_div)]:
            with warnings.catch_warnings(record=True) as wo:
                warnings.simplefilter("always")
                a = ours(x, t, size_average=sa, reduce=rd, reduction="batchmean" if ours is LF.kl_div else "mean")
            with warnings.catch_warnings(record=True) as wr:
                warnings.simplefilter("always")
                b = ref(x, t, size_average=sa, reduce=rd, reduction="batchmean" if ref is F.kl_div else "mean")
            torch.testing.assert_close(a, b)
            assert [(w.category, str(w.message)) for w in wo] == [(w.category, str(w.message)) for w in wr]


def test_kl_mean_warning_as_torch():
    x, t = torch.randn(3, 4), torch.rand(3, 4)
    caught = []
    for f in (F.kl_div, LF.kl_div):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            f(x, t)
            f(x, t, reduction="batchmean")
            f(x, t, reduction="sum")
        caught.append([(x.category, str(x.message), os.path.basename(x.filename)) for x in w])
    assert len(caught[0]) == 1 and caught[0] == caught[1]  # same text, category, and caller's line


# --- errors --------------------------------------------------------------------------------------
def _raises_like_torch(ours, ref, *args, **kwargs):
    """Both raise, the same exception type; returns ours' message."""
    try:
        ref(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        expected = type(e)
    else:
        raise AssertionError("torch did not raise")
    with pytest.raises(expected) as info:
        ours(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    x, t = torch.randn(3, 4, device=device), torch.rand(3, 5, device=device)
    v = torch.rand(3, 4, device=device)
    for ours, ref in [(LF.poisson_nll_loss, F.poisson_nll_loss), (LF.kl_div, F.kl_div)]:
        msg = _raises_like_torch(ours, ref, x, t)  # does not broadcast
        assert ours.__name__ in msg and "[3, 4]" in msg and "[3, 5]" in msg, msg
        _raises_like_torch(ours, ref, x, x, reduction="avg")
        _raises_like_torch(ours, ref, x, x, reduction="elementwise_sum")
    _raises_like_torch(LF.poisson_nll_loss, F.poisson_nll_loss, x, x, reduction="batchmean")
    _raises_like_torch(LF.poisson_nll_loss, F.poisson_nll_loss, x, x, reduction="elementwise_mean")
    assert "not a valid value for reduction" in _raises_like_torch(LF.kl_div, F.kl_div, x, x, reduction="avg")
    assert "Integral" in _raises_like_torch(LF.kl_div, F.kl_div, x, x.long())
    _raises_like_torch(LF.kl_div, F.kl_div, x.long(), x)
    g = (LF.gaussian_nll_loss, F.gaussian_nll_loss)
    assert "negative" in _raises_like_torch(*g, x, x, -v)
    assert "negative" in _raises_like_torch(*g, x, x, v - 0.5)
    assert "negative" in _raises_like_torch(*g, x, x, -0.5)
    _raises_like_torch(*g, x, x, 1)                                    # an int var: TypeError
    for bad in [(4,), (3, 3), (1, 1), (3, 4, 1), (2, 4), ()]:
        assert "incorrect size" in _raises_like_torch(*g, x, x, torch.rand(bad, device=device))
    _raises_like_torch(*g, x, x, torch.rand(0, 1, device=device))    # passes the size rule, cannot broadcast
    _raises_like_torch(*g, x, t, v)                                     # target does not broadcast
    assert "not valid" in _raises_like_torch(*g, x, x, v, reduction="avg")
    _raises_like_torch(*g, x, x, torch.ones(3, 4, device=device, dtype=torch.long))  # integer var
    _raises_like_torch(*g, x, x.bool(), v)                               # bool target
    # The ops themselves (C++ callers) raise the same types and name themselves.
    with pytest.raises(ValueError, match="gaussian_nll_loss: var has negative"):
        OPS.gaussian_nll_loss(x, x, -v, 1.0, False, 1e-6, 1, [False, False, False])
    with pytest.raises(ValueError, match="gaussian_nll_loss: var has negative"):
        OPS.gaussian_nll_loss(x, x, None, -1.0, False, 1e-6, 1, [False, False, False])
    with pytest.raises(ValueError, match=r"gaussian_nll_loss: var is of incorrect size.*\[4\].*\[3, 4\]"):
        OPS.gaussian_nll_loss(x, x, torch.rand(4, device=device), 1.0, False, 1e-6, 1, [False, False, False])
    with pytest.raises(RuntimeError, match="gaussian_nll_loss: .*var.*floating"):
        OPS.gaussian_nll_loss(x, x, v.long(), 1.0, False, 1e-6, 1, [False, False, False])
    with pytest.raises(RuntimeError, match=r"poisson_nll_loss: .*\[3, 4\].*\[3, 5\]"):
        OPS.poisson_nll_loss(x, t, True, False, 1e-8, 1, [False, False])
    with pytest.raises(ValueError, match="kl_div: reduction"):
        OPS.kl_div(x, x, 3, False, True, [False, False])
    with pytest.raises(ValueError, match="poisson_nll_loss: reduction"):
        OPS.poisson_nll_loss(x, x, True, False, 1e-8, 3, [False, False])
    with pytest.raises(RuntimeError, match="kl_div: Integral"):
        OPS.kl_div(x.long(), x, 1, False, False, [False, False])


# --- torch.library contract: opcheck, compile, gradcheck -----------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x = torch.rand(6, 5, device=device, requires_grad=True) + 0.1
    t = torch.rand(6, 5, device=device, requires_grad=True)
    masks2 = ([True, False], [False, False], [True, True], [False, True])
    for red in (0, 1, 2):
        go = torch.randn((), device=device) if red else torch.randn(6, 5, device=device)
        for mask in masks2:
            opcheck(OPS.poisson_nll_loss.default, (x, t, True, True, 1e-8, red, mask))
            opcheck(OPS.poisson_nll_loss.default, (x, t, False, False, 0.1, red, mask))
            opcheck(OPS.kl_div.default, (x, t, red, False, False, mask))
            opcheck(OPS.kl_div.default, (x, t, red, True, True, mask))
        opcheck(OPS.poisson_nll_loss_backward.default, (go, x.detach(), t.detach(), False, True, 1e-8, red, [True, True]))
        counts = torch.randint(0, 5, (6, 5), device=device)  # integer targets; a wider 0-d target
        opcheck(OPS.poisson_nll_loss.default, (x, counts, True, True, 1e-8, red, [True, False]))
        opcheck(OPS.poisson_nll_loss.default, (counts, counts, False, False, 1e-8, red, [False, False]))
        opcheck(OPS.poisson_nll_loss.default, (x, t[0, 0].double().detach(), True, False, 1e-8, red, [True, False]))
        opcheck(OPS.gaussian_nll_loss.default, (x, counts, None, 0.3, False, 1e-6, red, [True, False, False]))
        opcheck(OPS.kl_div_backward.default, (go, x.detach(), t.detach(), red, True, False, [True, True]))
        opcheck(OPS.kl_div_backward.default, (go, x.detach(), t.detach(), red, False, True, [True, True]))
        for vs in [(6, 5), (6,), (6, 1), (1, 5)]:
            v = torch.rand(vs, device=device, requires_grad=True)
            for mask in ([True, True, True], [False, False, True], [True, False, False], [False, False, False]):
                opcheck(OPS.gaussian_nll_loss.default, (x, t, v, 1.0, True, 1e-6, red, mask))
            opcheck(OPS.gaussian_nll_loss_backward.default,
                    (go, x.detach(), t.detach(), v.detach(), 1.0, False, 1e-6, red, [True, True, True]))
        opcheck(OPS.gaussian_nll_loss.default, (x, t, None, 0.5, False, 1e-6, red, [True, True, False]))
        opcheck(OPS.gaussian_nll_loss_backward.default,
                (go, x.detach(), t.detach(), None, 0.5, False, 1e-6, red, [True, True, False]))


def _compile_cases(device):
    x = torch.rand(6, 5, device=device) + 0.1
    t = torch.rand(6, 5, device=device)
    v = torch.rand(6, device=device) + 0.1
    return [
        (LF.poisson_nll_loss, [x, t], dict(log_input=False, full=True)),
        (LF.kl_div, [x, t], dict(log_target=False)),
        (LF.gaussian_nll_loss, [x, t, v], dict(full=True)),
        (lambda a, b, **kw: LF.gaussian_nll_loss(a, b, 0.4, **kw), [x, t], {}),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
def test_compile_fullgraph(reduction, device):
    for fn, tensors, kw in _compile_cases(device):
        if reduction == "batchmean" and fn is not LF.kl_div:
            continue
        torch._dynamo.reset()
        leaves = [a.clone().requires_grad_() for a in tensors]
        a = torch.compile(fn, fullgraph=True)(*leaves, reduction=reduction, **kw)
        b = fn(*leaves, reduction=reduction, **kw)
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape, device=device)
        for ga, gb in zip(torch.autograd.grad(a, leaves, g), torch.autograd.grad(b, leaves, g)):
            torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("spec,reduction", SPEC_REDUCTIONS)
def test_gradcheck(spec, reduction):
    kw = dict(dtype=torch.float64)
    x = torch.rand(4, 3, **kw) + 0.2
    # Targets away from the Stirling mask edge (1) and from kl_div's NaN gradient at 0.
    t = torch.tensor([0.3, 0.7, 1.5, 2.5, 4.0, 0.2], **kw).repeat(2).view(4, 3) + torch.rand(4, 3, **kw) * 0.05
    cases = {
        "poisson_nll_loss": [((x, t), dict(log_input=li, full=fu)) for li in (True, False) for fu in (False, True)],
        "kl_div": [((x, t), dict(log_target=lt)) for lt in (False, True)],
        # (Below eps torch's var gradient is deliberately not the derivative: test_special_values.)
        "gaussian_nll_loss": [((x, t, torch.rand(vs, **kw) + 0.1), dict(full=True))
                              for vs in [(4, 3), (4,), (4, 1), (1, 3)]],
    }[spec.name]
    for args, opts in cases:
        args = [a.clone().requires_grad_() for a in args]
        assert torch.autograd.gradcheck(lambda *a: spec.ours(*a, reduction=reduction, **opts), args)



# --- broadcast var gradients: sum_to_size on CPU and CUDA ----------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_var_gradient_sum_to_size(reduction, dtype, device):
    """Every way var broadcasts; the (input, target, var) gradients summed back to each shape."""
    cases = [
        ((3, 4, 5, 6), (3, 4, 5, 6), (3, 1, 5, 6)),     # one broadcast dimension in the middle
        ((3, 4, 5, 6), (3, 4, 5, 6), (3, 4, 5)),        # unsqueezed: summed over the last dimension
        ((3, 4, 5, 6), (3, 4, 5, 6), (1, 4, 5, 6)),     # over the first
        ((4, 5), (3, 4, 5), (4, 1)),                    # target enlarges: input and var summed over dim 0 too
        ((5,), (2, 3, 5), ()),                          # 0-d var with 1-d input: unsqueezed to (1,)
        ((300, 257), (300, 257), (300,)),               # long rows
        ((1031, 33), (1031, 33), (1, 33)),              # long columns
        ((3, 0), (3, 0), (3, 1)),                       # empty: var gradient is zeros
        ((0, 4), (0, 4), (0, 1)),
    ]
    for xs, ts, vs in cases:
        x = (torch.randn(xs, device=device) * 0.5).to(dtype)
        t = (torch.randn(ts, device=device) * 0.5).to(dtype)
        v = (torch.rand(vs, device=device) + 0.5).to(dtype)
        check_loss(lambda a, b, c: LF.gaussian_nll_loss(a, b, c, reduction=reduction),
                   lambda a, b, c: F.gaussian_nll_loss(a, b, c, reduction=reduction),
                   [x, t, v], diff=(0, 1, 2), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_var_gradient_of_views(device):
    # var given as a transposed / expanded / strided view: the gradient has the view's shape.
    x, t = torch.randn(8, 6, device=device, dtype=torch.float64), torch.randn(8, 6, device=device, dtype=torch.float64)
    for v in [torch.rand(6, 8, device=device, dtype=torch.float64).t(),
              torch.rand(8, 1, device=device, dtype=torch.float64).expand(8, 6),
              torch.rand(8, 12, device=device, dtype=torch.float64)[:, ::2],
              torch.rand(16, device=device, dtype=torch.float64)[::2],         # (8,): unsqueezed
              torch.rand(1, 12, device=device, dtype=torch.float64)[:, 1::2]]:
        v = v + 0.2
        for red in ("none", "mean"):
            check_loss(lambda a, b, c: LF.gaussian_nll_loss(a, b, c, reduction=red),
                       lambda a, b, c: F.gaussian_nll_loss(a, b, c, reduction=red), [x, t, v], diff=(0, 1, 2))


# --- large inputs: accuracy and determinism --------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_large_deterministic(device):
    n = 1 << 21
    x = torch.rand(n // 512, 512, device=device) + 0.1
    t = torch.rand(n // 512, 512, device=device) * 3
    v = torch.rand(n // 512, 1, device=device) + 0.1
    runs = [
        (LF.poisson_nll_loss, F.poisson_nll_loss, [x, t], dict(log_input=False, full=True)),
        (LF.kl_div, F.kl_div, [x, t], dict(reduction="batchmean")),
        (LF.gaussian_nll_loss, F.gaussian_nll_loss, [x, t, v], {}),
    ]
    threads = torch.get_num_threads()
    for ours, ref, tensors, kw in runs:
        check_loss(lambda *a: ours(*a, **kw), lambda *a: ref(*a, **kw), tensors, diff=tuple(range(len(tensors))))
        results = []
        for nt in ([1, max(2, threads)] if device == "cpu" else [threads, threads]):
            torch.set_num_threads(nt)
            try:
                leaves = [a.clone().requires_grad_() for a in tensors]
                out = ours(*leaves, **kw)
                results.append((out, *torch.autograd.grad(out, leaves, torch.tensor(0.37, device=device))))
            finally:
                torch.set_num_threads(threads)
        for a, b in zip(*results):
            assert torch.equal(a, b), f"{ours.__name__}: not bitwise reproducible across thread counts"


# --- drop-in modules -------------------------------------------------------------------------------
def test_modules_are_drop_in():
    x, t, v = torch.rand(5, 4) + 0.1, torch.rand(5, 4) * 2, torch.rand(5, 1) + 0.1
    pairs = [
        (lossext.nn.PoissonNLLLoss(log_input=False, full=True, eps=1e-3, reduction="sum"),
         torch.nn.PoissonNLLLoss(log_input=False, full=True, eps=1e-3, reduction="sum"), (x, t)),
        (lossext.nn.PoissonNLLLoss(size_average=False), torch.nn.PoissonNLLLoss(size_average=False), (x, t)),
        (lossext.nn.GaussianNLLLoss(full=True, eps=0.2, reduction="none"),
         torch.nn.GaussianNLLLoss(full=True, eps=0.2, reduction="none"), (x, t, v)),
        (lossext.nn.GaussianNLLLoss(), torch.nn.GaussianNLLLoss(), (x, t, 0.3)),
        (lossext.nn.KLDivLoss(reduction="batchmean", log_target=True),
         torch.nn.KLDivLoss(reduction="batchmean", log_target=True), (x, t)),
        (lossext.nn.KLDivLoss(reduce=False), torch.nn.KLDivLoss(reduce=False), (x, t)),
    ]
    for ours, theirs, args in pairs:
        assert isinstance(ours, type(theirs))
        assert repr(ours) == repr(theirs)
        assert ours.__dict__.keys() == theirs.__dict__.keys()
        assert all(ours.__dict__[k] == theirs.__dict__[k] for k in ("reduction", "full", "eps", "log_input", "log_target")
                   if k in theirs.__dict__)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        torch.testing.assert_close(ours(*args), theirs(*args))


# --- every compiled CPU instruction set --------------------------------------------------------------
def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "torch.manual_seed(0)\n"
        "x = torch.rand(37, 53, dtype=torch.float64) + 0.1; t = torch.rand(37, 53, dtype=torch.float64) * 3\n"
        "v = torch.rand(37, 1, dtype=torch.float64) + 0.1\n"
        "t[::7] = 0\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):\n"
        "    xs, ts, vs = x.to(dt), t.to(dt), v.to(dt)\n"
        "    for li in (True, False):\n"
        "        a = LF.poisson_nll_loss(xs, ts, li, True, reduction='none')\n"
        "        b = F.poisson_nll_loss(xs.double(), ts.double(), li, True, reduction='none')\n"
        "        torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2)\n"
        "    for lt in (True, False):\n"
        "        a = LF.kl_div(xs, ts, reduction='sum', log_target=lt)\n"
        "        b = F.kl_div(xs.double(), ts.double(), reduction='sum', log_target=lt)\n"
        "        assert abs(a.double() - b) <= 1e-2 * abs(b), (dt, a, b)\n"
        "    a = LF.gaussian_nll_loss(xs, ts, vs, full=True, reduction='none')\n"
        "    b = F.gaussian_nll_loss(xs.double(), ts.double(), vs.double(), full=True, reduction='none')\n"
        "    torch.testing.assert_close(a.double(), b, rtol=2e-2, atol=2e-2)\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
