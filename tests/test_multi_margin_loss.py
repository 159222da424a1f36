"""multi_margin_loss against torch.

Values and gradients over shapes (empty batch, 0-d and unbatched inputs, one class, long rows,
transposed and strided inputs), p in {1, 2}, margins (negative included), class weights, every
reduction and the four dtypes; ties at the hinge, infinities and NaN as torch; out-of-range
targets (RuntimeError on the CPU, NaN on CUDA); errors with torch's types; the separate backward
(reduction none); opcheck, torch.compile, gradcheck, module, legacy reduction args, determinism,
every CPU ISA.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext
# (input shape, target shape)
SHAPES = [((5, 7), (5,)), ((7,), ()), ((7,), (1,)), ((1, 7), ()), ((), ()), ((), (1,)), ((3, 1), (3,)),
          ((0, 4), (0,)), ((33, 100), (33,)), ((2, 1000), (2,))]
OPTIONS = [dict(p=1, margin=1.0), dict(p=2, margin=1.0), dict(p=1, margin=0.3, weight=True),
           dict(p=2, margin=-0.5, weight=True), dict(p=1, margin=0.0), dict(p=2, margin=2.5)]


def _target(tshape, C, device):
    return torch.randint(0, C, tshape, device=device)


def _classes(xshape):
    return 1 if len(xshape) == 0 else xshape[-1]


def _mm(x, t, reduction, p=1, margin=1.0, weight=None, dtype=None):
    return check_loss(lambda a: LF.multi_margin_loss(a, t, p, margin, weight, reduction=reduction),
                      lambda a: F.multi_margin_loss(a, t.to(a.device), p, margin,
                                                    None if weight is None else weight.double(), reduction=reduction),
                      [x], diff=(0,), dtype=dtype)


def _weight(opt, C, dtype, device):
    return torch.rand(C, device=device, dtype=dtype) + 0.25 if opt.get("weight") else None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_matches_torch(shapes, reduction, dtype, device):
    xs, ts = shapes
    C = _classes(xs)
    if xs[:1] == (0,) and reduction != "none":
        pytest.skip("empty batch: torch returns uninitialised memory (see test_empty_batch)")
    for opt in OPTIONS:
        x = torch.randn(xs, device=device).to(dtype)
        w = _weight(opt, C, dtype, device)
        out = _mm(x, _target(ts, C, device), reduction, opt["p"], opt["margin"], w)
        if reduction == "none":
            assert out.shape == torch.Size(ts)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_layouts(reduction, device):
    # Transposed (N, C) (class dim strided: the spatial layout), sliced rows, a strided class dim,
    # an expanded (stride-0) input.
    base = torch.randn(40, 64, device=device)
    t = _target((30,), 40, device)
    for x in (base.t()[:30], base.t()[:30, ::1].contiguous()[:, :37], base[:30, ::2], base[:30, 1:38],
              torch.randn(1, 37, device=device).expand(30, 37)):
        C = x.shape[1]
        for p in (1, 2):
            _mm(x, t % C, reduction, p, 0.7, torch.rand(C, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_ties_infinities_and_nan_match_torch_exactly(device):
    # z = margin - x_t + x_c: z == 0 adds nothing (torch: z > 0); a NaN z adds nothing; x_t = -inf
    # gives inf, x_t = +inf gives 0 (the c == t term is NaN and skipped, as torch skips c == t).
    inf, nan = float("inf"), float("nan")
    x = torch.tensor([[0.0, 1.0, 0.0, -1.0], [1.0, nan, 2.0, 0.5], [-inf, 0.0, 1.0, 2.0], [inf, 0.0, 1.0, 2.0],
                      [nan, 0.0, 1.0, 2.0], [3.0, inf, -inf, 0.0]], dtype=torch.float64, device=device)
    t = torch.tensor([1, 0, 0, 0, 0, 3], device=device)
    for p in (1, 2):
        for margin in (1.0, 0.0, -1.0):
            for red in REDUCTIONS:
                res = []
                for f in (LF.multi_margin_loss, F.multi_margin_loss):
                    xi = x.clone().requires_grad_()
                    out = f(xi, t, p=p, margin=margin, reduction=red)
                    res.append((out, torch.autograd.grad(out.sum(), xi)[0]))
                for a, b in zip(*res):
                    torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    # torch returns uninitialised memory for mean and sum; lossext the mathematical values.
    x = torch.randn(0, 5, device=device, requires_grad=True)
    t = torch.zeros(0, dtype=torch.long, device=device)
    assert LF.multi_margin_loss(x, t).isnan()
    loss = LF.multi_margin_loss(x, t, reduction="sum")
    assert loss.item() == 0
    (g,) = torch.autograd.grad(loss, x)
    assert g.shape == (0, 5)
    assert LF.multi_margin_loss(x, t, reduction="none").shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
def test_separate_backward_with_grad_output(device):
    # reduction none runs the backward op from the saved statistic; mean with a non-unit grad_output
    # scales the forward's gradient.
    x = torch.randn(9, 13, device=device)
    t = _target((9,), 13, device)
    w = torch.rand(13, device=device)
    for p in (1, 2):
        for red in REDUCTIONS:
            check_loss(lambda a: LF.multi_margin_loss(a, t, p, 0.4, w, reduction=red),
                       lambda a: F.multi_margin_loss(a, t, p, 0.4, w.double(), reduction=red), [x])


def test_out_of_range_target_raises_on_cpu():
    x = torch.randn(3, 4)
    for bad in (4, -1, -100):
        t = torch.tensor([0, bad, 1])
        with pytest.raises(RuntimeError, match="target out of range"):
            F.multi_margin_loss(x, t)
        with pytest.raises(RuntimeError, match=r"multi_margin_loss: target .* is out of range"):
            LF.multi_margin_loss(x, t)
        assert not isinstance(pytest.raises(RuntimeError, LF.multi_margin_loss, x, t).value, IndexError)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_out_of_range_target_is_nan_on_cuda():
    # No device assert, no host sync: the sample's loss and gradient row are NaN, the others exact.
    x = torch.randn(4, 6, device="cuda", requires_grad=True)
    t = torch.tensor([0, 6, -1, 2], device="cuda")
    out = LF.multi_margin_loss(x, t, reduction="none")
    assert out[1].isnan() and out[2].isnan()
    ok = torch.tensor([0, 3])
    torch.testing.assert_close(out[ok], F.multi_margin_loss(x[ok], t[ok], reduction="none"))
    (g,) = torch.autograd.grad(LF.multi_margin_loss(x, t, reduction="sum"), x)
    assert g[1:3].isnan().all() and not g[ok].isnan().any()


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    x = torch.randn(3, 4, device=device)
    t = torch.tensor([0, 1, 2], device=device)
    cases = [
        ((x, t.int()), {}, RuntimeError),                       # target dtype
        ((x, t.float()), {}, RuntimeError),
        ((x, t[:2]), {}, RuntimeError),                         # target size
        ((x, t.view(3, 1)), {}, RuntimeError),
        ((torch.randn(3, 0, device=device), t), {}, RuntimeError),      # no classes
        ((torch.randn(3, 4, 5, device=device), t), {}, RuntimeError),   # 3-D input
        ((x, t), {"weight": torch.ones(5, device=device)}, RuntimeError),
        ((x, t), {"weight": torch.ones(4, device=device, dtype=torch.float64)}, RuntimeError),
        ((x, t), {"weight": torch.ones(2, 2, device=device)}, ValueError),
        ((x, t), {"p": 3}, ValueError),
        ((x, t), {"p": 0}, ValueError),
        ((x, t), {"reduction": "bad"}, ValueError),
        ((x.to(torch.complex64), t), {}, NotImplementedError),
    ]
    for args, kw, exc in cases:
        with pytest.raises(exc):
            F.multi_margin_loss(*args, **kw)
        with pytest.raises(exc):
            LF.multi_margin_loss(*args, **kw)
    with pytest.raises(RuntimeError, match=r"multi_margin_loss: .*\[2\].*\[3, 4\]"):
        LF.multi_margin_loss(x, t[:2])
    with pytest.raises(RuntimeError, match="Long"):
        LF.multi_margin_loss(x, t.int())
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        LF.multi_margin_loss(x.requires_grad_(), t, weight=torch.ones(4, device=device, requires_grad=True))
    for kw in ({"p": 3}, {"weight": torch.ones(2, 2)}):
        with pytest.raises(ValueError):
            torch.nn.MultiMarginLoss(**kw)
        with pytest.raises(ValueError):
            lossext.nn.MultiMarginLoss(**kw)


def _case(device, dtype=torch.float32):
    x = torch.randn(6, 9, device=device, dtype=dtype)
    return x, _target((6,), 9, device), torch.rand(9, device=device, dtype=dtype) + 0.2


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x, t, w = _case(device)
    op, bwd = OPS.multi_margin_loss.default, OPS.multi_margin_loss_backward.default
    for p, weight in ((1, None), (2, w)):
        for red in (0, 1, 2):
            for mask in ([True], [False]):
                opcheck(op, (x.clone().requires_grad_(), t, p, 0.5, weight, red, mask))
            saved = op(x, t, p, 0.5, weight, red, [False])[2]
            go = torch.randn((), device=device) if red else torch.randn(6, device=device)
            opcheck(bwd, (go, x, t, p, 0.5, weight, red, saved, [True]))
    # unbatched, 0-d target
    opcheck(op, (x[0].clone().requires_grad_(), t[0], 1, 1.0, None, 0, [True]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
def test_compile_fullgraph(p, reduction, device):
    x, t, w = _case(device)
    leaf = x.clone().requires_grad_()
    f = lambda a: LF.multi_margin_loss(a, t, p=p, margin=0.6, weight=w, reduction=reduction)  # noqa: E731
    compiled = torch.compile(f, fullgraph=True)
    a, b = compiled(leaf), f(leaf)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    torch.testing.assert_close(torch.autograd.grad(a, leaf, g)[0], torch.autograd.grad(b, leaf, g)[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
def test_gradcheck(p, reduction):
    x, t, w = _case("cpu", torch.float64)
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: LF.multi_margin_loss(a, t, p, 0.5, w, reduction=reduction), [leaf])


def test_second_derivative_is_the_losss_own():
    """torch raises here (no double backward); lossext's second derivative passes gradgradcheck."""
    x, t, w = _case("cpu", torch.float64)
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda a: LF.multi_margin_loss(a, t, p=2, weight=w), [leaf])


def test_module_is_drop_in():
    x, t, w = _case("cpu")
    for kwargs in [{}, {"p": 2, "margin": 0.5, "weight": w, "reduction": "sum"}, {"reduction": "none"}]:
        ours, theirs = lossext.nn.MultiMarginLoss(**kwargs), torch.nn.MultiMarginLoss(**kwargs)
        assert isinstance(ours, torch.nn.MultiMarginLoss)
        assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
        leaf = x.clone().requires_grad_()
        a, b = ours(leaf, t), theirs(leaf, t)
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape)
        torch.testing.assert_close(torch.autograd.grad(a, leaf, g)[0], torch.autograd.grad(b, leaf, g)[0])


def test_legacy_reduction_args():
    x, t, w = _case("cpu")
    for sa, rd in [(None, False), (False, None), (True, True), (False, True)]:
        with pytest.warns(UserWarning):
            a = LF.multi_margin_loss(x, t, 2, 0.5, w, size_average=sa, reduce=rd)
        with pytest.warns(UserWarning):
            b = F.multi_margin_loss(x, t, 2, 0.5, w, size_average=sa, reduce=rd)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_large_and_deterministic(device):
    # Many rows and a long row of a small batch (split in segments on the CPU); same bits for any
    # thread count.
    for n, c in ((4096, 1000), (3, 300_000)):
        x = torch.randn(n, c, device=device)
        t = _target((n,), c, device)
        _mm(x, t, "mean", 1, 1.0)
        threads = torch.get_num_threads()
        try:
            res = []
            for nt in (1, 2, 3):
                torch.set_num_threads(nt)
                a = x.clone().requires_grad_()
                loss = LF.multi_margin_loss(a, t, p=2)
                res.append((loss, torch.autograd.grad(loss, a)[0]))
            for r in res[1:]:
                assert all(torch.equal(p, q) for p, q in zip(res[0], r))
        finally:
            torch.set_num_threads(threads)


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = torch.randn(37, 53, dtype=torch.float64, generator=g); t = torch.randint(0, 53, (37,), generator=g)\n"
        "w = torch.rand(53, dtype=torch.float64, generator=g)\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):\n"
        "    for red in ('sum', 'none'):\n"
        "        for p, xx in ((1, x), (2, x.t().contiguous().t())):\n"
        "            a_in = xx.to(dt).requires_grad_(); b_in = xx.to(dt).double().requires_grad_()\n"
        "            a = LF.multi_margin_loss(a_in, t, p, 0.7, w.to(dt), reduction=red)\n"
        "            b = F.multi_margin_loss(b_in, t, p, 0.7, w.to(dt).double(), reduction=red)\n"
        "            assert (a.double() - b).abs().max() <= 1e-2 * (1 + b.abs().max()), (dt, red)\n"
        "            ga, = torch.autograd.grad(a.sum(), a_in); gb, = torch.autograd.grad(b.sum(), b_in)\n"
        "            assert (ga.double() - gb).abs().max() <= 1e-2 * (1 + gb.abs().max()), (dt, red, 'grad')\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
