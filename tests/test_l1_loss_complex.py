"""Complex l1_loss (issue 8 item 7): |x - t| is real, d/dx = sgn(x - t) (0 at 0), d/dt = -sgn(x - t),
computed by the pointwise driver's complex components (csrc/losses/l1_loss.h ComplexL1Base). Compared
with torch computed in complex128/float64 on the same values: values, gradients of input, target and
weight, dtypes, every reduction, broadcasting, strided views, mixed complex/real operands."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, TOL, assert_close, opcheck, run_every_isa

OPS = torch.ops.lossext
pytestmark = pytest.mark.filterwarnings("ignore:Using a target size")  # torch's broadcast warning, as torch
REDUCTIONS = ["none", "mean", "sum"]
# (input dtype, target dtype): complex pairs, mixed complex/real, complex with an integer target.
DTYPE_PAIRS = [
    (torch.complex64, torch.complex64),
    (torch.complex128, torch.complex128),
    (torch.complex64, torch.float32),
    (torch.float32, torch.complex64),
    (torch.complex64, torch.complex128),
    (torch.complex128, torch.float16),
    (torch.complex64, torch.int64),
]
SHAPES = [((4, 3), (4, 3)), ((2, 1, 3), (4, 3)), ((5,), (1,)), ((), ())]


def _rand(shape, dtype, device, g):
    if dtype.is_complex or dtype.is_floating_point:
        return torch.randn(shape, generator=g, dtype=torch.complex128 if dtype.is_complex else torch.float64).to(
            dtype).to(device)
    return torch.randint(-3, 4, shape, generator=g).to(dtype).to(device)


def _up(v):
    if not isinstance(v, torch.Tensor):
        return v
    v = v.detach()
    v = v.to(torch.complex128) if v.is_complex() else (v.double() if v.is_floating_point() else v)
    return v.requires_grad_(v.is_floating_point() or v.is_complex())


def _close(a, e, dtype, what):
    """harness.assert_close on the (re, im) parts of complex tensors."""
    assert a.dtype.is_complex == e.dtype.is_complex, what
    if a.is_complex():
        a, e = torch.view_as_real(a.detach().to(torch.complex128)), torch.view_as_real(e.detach())
    assert_close(a, e, dtype, what)


def check(x, t, w=None, reduction="mean", grads=True, g=None):
    """lossext vs torch (complex128/float64 reference) for value, dtype and every gradient."""
    leaves = [v for v in (x, t, w) if v is not None and (v.is_floating_point() or v.is_complex())]
    leaves = [v.detach().clone().requires_grad_(grads) for v in leaves]
    it = iter(leaves)
    args = [next(it) if v is not None and (v.is_floating_point() or v.is_complex()) else v for v in (x, t, w)]
    out = LF.l1_loss(args[0], args[1], reduction=reduction, weight=args[2])
    with torch.no_grad():
        ref_dtype = F.l1_loss(x, t, reduction=reduction, weight=w).dtype
    ups = [_up(v) for v in args]
    ref = F.l1_loss(ups[0], ups[1], reduction=reduction, weight=ups[2])
    # The least precise operand (or the loss) sets the tolerance.
    reals = [v.dtype.to_real() for v in (x, t, w, out) if v is not None and (v.is_floating_point() or v.is_complex())]
    tol_dtype = max(reals, key=lambda d: torch.finfo(d).eps)
    assert out.dtype == ref_dtype and out.shape == ref.shape and not out.is_complex()
    _close(out, ref, tol_dtype, "loss")
    if not grads:
        return out
    go = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad(out, leaves, go.to(out.dtype).to(out.device))
    up_leaves = [u for u in ups if isinstance(u, torch.Tensor) and u.requires_grad]
    want = torch.autograd.grad(ref, up_leaves, go.to(ref.device))
    for k, (a, e, leaf) in enumerate(zip(got, want, leaves)):
        assert a.dtype == leaf.dtype and a.shape == leaf.shape, (k, a.dtype, leaf.dtype)
        _close(a, e, tol_dtype, f"grad {k}")
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtypes", DTYPE_PAIRS, ids=lambda d: f"{str(d[0])[6:]}-{str(d[1])[6:]}")
def test_values_and_gradients_match_torch(dtypes, reduction, device):
    g = torch.Generator().manual_seed(7)
    for (xs, ts), weight in itertools.product(SHAPES, (None, torch.float32, torch.float64)):
        x, t = _rand(xs, dtypes[0], device, g), _rand(ts, dtypes[1], device, g)
        w = None if weight is None else torch.rand(xs, generator=g, dtype=weight).to(device)
        check(x, t, w, reduction, g=g)


@pytest.mark.parametrize("device", DEVICES)
def test_strided_and_expanded_complex_views(device):
    g = torch.Generator().manual_seed(3)
    base = _rand((6, 8), torch.complex64, device, g)
    t = _rand((8, 6), torch.complex64, device, g)
    for red in REDUCTIONS:
        check(base.t(), t, reduction=red, g=g)                          # transposed
        check(base[::2, 1::3], t[:3, :3].t(), reduction=red, g=g)        # sliced, both strided
        check(base[:1].expand(5, 8), t[:5, :1].expand(5, 8), reduction=red, g=g)  # expanded
        check(base.conj(), t.t(), reduction=red, g=g)                   # a conjugate view
        check(torch.view_as_complex(torch.randn(4, 5, 2, generator=g).to(device)), t[:4, :5], reduction=red, g=g)


def test_the_issue_case_raised_before():
    """Before: NotImplementedError ("l1_loss: complex inputs are not supported")."""
    x = torch.tensor([1 + 2j, -3 + 0.5j, 0j], requires_grad=True)
    t = torch.tensor([1 - 1j, 1 + 0.5j, 0j])
    loss = LF.l1_loss(x, t, reduction="sum")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, torch.tensor(3.0 + 4.0))
    (g,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g, torch.tensor([0 + 1j, -1 + 0j, 0j]))  # sgn(d), 0 at d = 0


def test_complex32():
    x = torch.randn(6, dtype=torch.complex64).to(torch.complex32).requires_grad_()
    t = torch.randn(6, dtype=torch.complex64).to(torch.complex32)
    for red in REDUCTIONS:
        out = LF.l1_loss(x, t, reduction=red)
        xr = x.detach().to(torch.complex128).requires_grad_()
        ref = F.l1_loss(xr, t.to(torch.complex128), reduction=red)
        assert out.dtype == F.l1_loss(x.detach(), t, reduction=red).dtype == torch.float16
        assert_close(out, ref, torch.float16, red)
        go = torch.rand(out.shape, dtype=torch.float64) + 0.5
        (gx,) = torch.autograd.grad(out, x, go.half())
        (gr,) = torch.autograd.grad(ref, xr, go)
        assert gx.dtype == torch.complex32
        _close(gx.to(torch.complex64), gr, torch.float16, "grad")


def test_edge_values_match_torch():
    nan, inf = float("nan"), float("inf")
    vals = [complex(inf, 1), complex(nan, 0), complex(1, nan), complex(inf, inf), 0j, complex(-inf, 0),
            complex(1e30, 1e30), complex(1e-30, -1e-30), complex(3e38, 3e38), complex(1e-40, 0), complex(0, -2)]
    for dt in (torch.complex64, torch.complex128):
        x = torch.tensor(vals, dtype=dt, requires_grad=True)
        t = torch.zeros(len(vals), dtype=dt)
        out = LF.l1_loss(x, t, reduction="none")
        # Reference: torch in complex128 (torch's complex64 sgn is NaN at a subnormal |x - t| such as
        # 1e-40, where d / |d| is 1: README, where torch itself fails).
        xr = x.detach().to(torch.complex128).requires_grad_()
        ref = F.l1_loss(xr, t.to(torch.complex128), reduction="none")
        # No overflow of the squares at 1e30, no underflow at 1e-40; at 3e38 |d| overflows (inf, as
        # torch), its gradient sgn(d) does not.
        torch.testing.assert_close(out, ref.to(out.dtype), equal_nan=True)
        (g,) = torch.autograd.grad(out.sum(), x)
        (gr,) = torch.autograd.grad(ref.sum(), xr)
        torch.testing.assert_close(g, gr.to(g.dtype), equal_nan=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_complex128(reduction):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(3, 4, dtype=torch.complex128, generator=g, requires_grad=True)
    t = torch.randn(4, dtype=torch.complex128, generator=g, requires_grad=True)
    tr = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.rand(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: LF.l1_loss(x, t, reduction=reduction), (x, t))
    assert torch.autograd.gradcheck(lambda x, t, w: LF.l1_loss(x, t, reduction=reduction, weight=w), (x, t, w))
    assert torch.autograd.gradcheck(lambda x, t: LF.l1_loss(x, t, reduction=reduction), (x, tr))
    assert torch.autograd.gradcheck(lambda t, x: LF.l1_loss(t, x, reduction=reduction), (tr, t.detach()))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_complex(device):
    g = torch.Generator().manual_seed(5)
    x = _rand((6, 5), torch.complex64, device, g).requires_grad_()
    for t, w in [(_rand((6, 5), torch.complex64, device, g), torch.rand(6, 5, device=device)),
                 (_rand((6, 1), torch.float32, device, g), None), (_rand((5,), torch.complex128, device, g), None)]:
        t.requires_grad_()
        if w is not None:
            w.requires_grad_()
        for red in (0, 1, 2):
            for mask in ([True, False, True], [True, True, True]):
                opcheck(OPS.l1_loss.default, (x, t, w, red, mask))
            shape = torch.broadcast_shapes(x.shape, t.shape)
            go = torch.randn((), device=device) if red else torch.randn(shape, device=device)
            opcheck(OPS.l1_loss_backward.default, (go, x.detach(), t.detach(), None if w is None else w.detach(),
                                                    red, [True, True, True]))


def test_compile_fullgraph_complex():
    x = torch.randn(4, 3, dtype=torch.complex64, requires_grad=True)
    t = torch.randn(3, dtype=torch.complex64)
    torch._dynamo.reset()
    f = torch.compile(lambda x, t: LF.l1_loss(x, t, reduction="sum"), fullgraph=True)
    out = f(x, t)
    (g,) = torch.autograd.grad(out * 1.5, x)
    xr = x.detach().clone().requires_grad_()
    ref = F.l1_loss(xr, t, reduction="sum")
    (gr,) = torch.autograd.grad(ref * 1.5, xr)
    torch._dynamo.reset()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, gr)


def test_double_backward_is_torchs_for_complex_too():
    t = torch.randn(3, dtype=torch.complex128)
    res = []
    for f in (LF.l1_loss, F.l1_loss):
        x = torch.randn(3, dtype=torch.complex128, generator=torch.Generator().manual_seed(0)).requires_grad_()
        (g,) = torch.autograd.grad(f(x, t), x, create_graph=True)
        (g.abs() ** 2 + (g * g.conj()).real * g.real).sum().backward()
        res.append(x.grad)
    torch.testing.assert_close(res[0], res[1])


def test_errors_match_torch_types():
    x = torch.randn(3, dtype=torch.complex64)
    with pytest.raises(RuntimeError):  # torch: subtraction with a bool tensor is not supported
        F.l1_loss(x, torch.ones(3, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="l1_loss: a bool target"):
        LF.l1_loss(x, torch.ones(3, dtype=torch.bool))
    with pytest.raises(RuntimeError, match=r"l1_loss: the size of input \[3\] does not broadcast"):
        LF.l1_loss(x, torch.ones(4, dtype=torch.complex64))
    with pytest.raises(ValueError):
        LF.l1_loss(x, x, weight=torch.ones(2))
    # torch's weighted loss is complex with a complex weight; lossext does not compute it (README).
    with pytest.raises(NotImplementedError, match="l1_loss: a complex weight is not supported"):
        LF.l1_loss(x, x, weight=torch.ones(3, dtype=torch.complex64))
    with pytest.raises(NotImplementedError, match="mse_loss: complex inputs are not supported"):
        LF.mse_loss(x, x)  # the other pair losses still raise


def test_module_and_a_tiny_complex_fit():
    """Fit a complex parameter with lossext.nn.L1Loss and with torch's: the same trajectory."""
    target = torch.tensor([1 + 2j, -0.5 + 1j, 3 - 1j, 0.25j])

    def fit(loss_fn):
        z = torch.zeros(4, dtype=torch.complex64, requires_grad=True)
        opt = torch.optim.SGD([z], lr=0.2, momentum=0.5)
        hist = []
        for _ in range(15):
            opt.zero_grad()
            loss = loss_fn(z * 1.5, target)
            loss.backward()
            opt.step()
            hist.append(loss.detach())
        return torch.stack(hist), z.detach()

    h, z = fit(lossext.nn.L1Loss())
    hr, zr = fit(torch.nn.L1Loss())
    torch.testing.assert_close(h, hr)
    torch.testing.assert_close(z, zr)
    assert h[-1] < 0.2 * h[0]


def test_sums_are_deterministic_across_thread_counts():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 257, dtype=torch.complex64, generator=g, requires_grad=True)
    t = torch.randn(257, dtype=torch.complex64, generator=g, requires_grad=True)
    n = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = LF.l1_loss(x, t, reduction="mean")
            outs.append((out.detach(), *torch.autograd.grad(out * 3, (x, t))))
    finally:
        torch.set_num_threads(n)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_every_cpu_isa():
    run_every_isa(
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "g = torch.Generator().manual_seed(2)\n"
        "x = torch.randn(37, 19, dtype=torch.complex64, generator=g, requires_grad=True)\n"
        "t = torch.randn(19, dtype=torch.complex64, generator=g)\n"
        "for red in ('none', 'mean', 'sum'):\n"
        "    a = LF.l1_loss(x, t, reduction=red); b = F.l1_loss(x, t, reduction=red)\n"
        "    torch.testing.assert_close(a, b)\n"
        "    go = torch.rand(a.shape, generator=g) + 0.5\n"
        "    torch.testing.assert_close(torch.autograd.grad(a, x, go)[0], torch.autograd.grad(b, x, go)[0])\n"
        "print(lossext.cpu_isa())\n")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(9)
    for (xs, ts), (dx, dt) in itertools.product(SHAPES + [((33, 129), (129,))], DTYPE_PAIRS[:4]):
        x, t = _rand(xs, dx, "cpu", g), _rand(ts, dt, "cpu", g)
        w = torch.rand(xs, generator=g)
        for red, ww in itertools.product(REDUCTIONS, (None, w)):
            xc, tc = x.cuda().requires_grad_(), t.cuda().requires_grad_()
            out = LF.l1_loss(xc, tc, reduction=red, weight=None if ww is None else ww.cuda())
            xh, th = x.clone().requires_grad_(), t.clone().requires_grad_()
            ref = LF.l1_loss(xh, th, reduction=red, weight=ww)
            torch.testing.assert_close(out.cpu(), ref)
            go = torch.randn(ref.shape, generator=g)
            for a, b in zip(torch.autograd.grad(out, (xc, tc), go.cuda()), torch.autograd.grad(ref, (xh, th), go)):
                torch.testing.assert_close(a.cpu(), b)
