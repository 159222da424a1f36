import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext

SHAPES = [(), (0,), (7,), (4, 5), (2, 3, 4), (3, 0, 2), (129, 67)]
WEIGHTS = [None, "class", "full", "scalar", "row"]


def _prob(shape, dtype, device):
    # Away from 0 and 1, where the gradients blow up (tested on their own below).
    return torch.rand(shape, dtype=dtype, device=device) * 0.98 + 0.01


def _weight(kind, shape, dtype, device):
    c = shape[-1:] if shape else ()
    if kind is None:
        return None
    if kind == "class":
        return torch.rand(c, dtype=dtype, device=device) + 0.5
    if kind == "full":
        return torch.rand(shape, dtype=dtype, device=device)
    if kind == "scalar":
        return torch.tensor(1.7, dtype=dtype, device=device)
    return torch.rand(shape[:-1] + (1,), dtype=dtype, device=device) if len(shape) > 1 else None  # "row"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch(shape, reduction, dtype, device):
    for kind in WEIGHTS:
        x, y = _prob(shape, dtype, device), torch.rand(shape, dtype=dtype, device=device)
        w = _weight(kind, shape, dtype, device)
        check_loss(lambda x, y: LF.binary_cross_entropy(x, y, w, reduction=reduction),
                   lambda x, y: F.binary_cross_entropy(x, y, None if w is None else w.double(), reduction=reduction),
                   [x, y], diff=(0, 1), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_clamp_and_eps_match_torch(dtype, device):
    # Every corner of torch's formula: the -100 clamp of each log (x = 0, 1, tiny, 1 - tiny), the
    # 1e-12 clamp of the gradient's denominator, and the unclamped +-inf target gradient.
    xs = [0.0, 1.0, 1e-30, 1e-8, 1 - 1e-7, 0.5, 0.25, 1e-3, 0.999]
    ys = [0.0, 1.0, 0.3]
    x = torch.tensor([a for a in xs for _ in ys], dtype=dtype, device=device)
    y = torch.tensor([b for _ in xs for b in ys], dtype=dtype, device=device)
    w = torch.rand(x.shape, dtype=dtype, device=device) + 0.5
    for weight in (None, w):
        a_x, a_y = x.clone().requires_grad_(), y.clone().requires_grad_()
        b_x, b_y = x.clone().requires_grad_(), y.clone().requires_grad_()
        a = LF.binary_cross_entropy(a_x, a_y, weight, reduction="none")
        b = F.binary_cross_entropy(b_x, b_y, weight, reduction="none")
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        g = torch.rand(x.shape, dtype=dtype, device=device) + 0.5
        ga = torch.autograd.grad(a, (a_x, a_y), g)
        gb = torch.autograd.grad(b, (b_x, b_y), g)
        torch.testing.assert_close(ga[0], gb[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ga[1], gb[1], rtol=1e-5, atol=1e-6)
        assert ga[1].isinf().sum() == 6  # -logit(x) at x = 0 and 1, unclamped as in torch


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_strided_and_expanded(reduction, device):
    x = _prob((40, 30), torch.float32, device).t()          # transposed
    y = torch.rand(30, 1, device=device).expand(30, 40)    # broadcast view (stride 0)
    w = torch.rand(80, device=device)[::2]                 # strided weight
    check_loss(lambda x, y: LF.binary_cross_entropy(x, y, w, reduction=reduction),
               lambda x, y: F.binary_cross_entropy(x, y, w.double(), reduction=reduction), [x, y], diff=(0, 1))
    xs = _prob((8, 6, 10), torch.float32, device)[:, ::2, 1:9]  # sliced, non-mergeable dims
    ys = torch.rand(8, 3, 8, device=device)
    check_loss(lambda x, y: LF.binary_cross_entropy(x, y, reduction=reduction),
               lambda x, y: F.binary_cross_entropy(x, y, reduction=reduction), [xs, ys], diff=(0, 1))
    xh = _prob((6, 10), torch.float16, device)[:, ::3]  # strided half: the gather + convert path
    yh = torch.rand(6, 4, dtype=torch.float16, device=device)
    check_loss(lambda x, y: LF.binary_cross_entropy(x, y, reduction=reduction),
               lambda x, y: F.binary_cross_entropy(x, y, reduction=reduction), [xh, yh], diff=(0, 1))


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last(device):
    x = _prob((2, 3, 5, 4), torch.float32, device).to(memory_format=torch.channels_last)
    y = torch.rand(2, 3, 5, 4, device=device)
    out = check_loss(lambda x, y: LF.binary_cross_entropy(x, y, reduction="none"),
                     lambda x, y: F.binary_cross_entropy(x, y, reduction="none"), [x, y], diff=(0, 1))
    assert out.shape == x.shape


@pytest.mark.parametrize("device", DEVICES)
def test_large_mean_deterministic(device):
    x = _prob((3_000_001,), torch.float32, device)
    y = torch.rand(3_000_001, device=device)
    check_loss(lambda x, y: LF.binary_cross_entropy(x, y), lambda x, y: F.binary_cross_entropy(x, y), [x, y],
               diff=(0,))
    a = LF.binary_cross_entropy(x, y)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        b = LF.binary_cross_entropy(x, y)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b), "reduction depends on the thread count"


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_out_of_range_raises_on_cpu(reduction):
    # torch's CPU kernel checks input and target; so do we (counted in the same pass, raised after).
    good_x, good_y = torch.rand(50), torch.rand(50)
    for bad in (1.5, -0.1, float("nan"), float("inf")):
        for which in ("input", "target"):
            x, y = good_x.clone(), good_y.clone()
            (x if which == "input" else y)[17] = bad
            for ours in (True, False):
                f = LF.binary_cross_entropy if ours else F.binary_cross_entropy
                xx = x.clone().requires_grad_()
                with pytest.raises(RuntimeError, match=f"all elements of {which} should be between 0 and 1"):
                    f(xx, y, reduction=reduction)
    x = good_x.clone()
    x[3], x[40] = 2.0, -1.0
    with pytest.raises(RuntimeError, match=r"binary_cross_entropy: .*input.* \(2 of 50 elements are not\)"):
        LF.binary_cross_entropy(x, good_y)


@pytest.mark.parametrize("device", DEVICES)
def test_out_of_range_is_nan_on_cuda(device):
    if device == "cpu":
        pytest.skip("CPU raises (test_out_of_range_raises_on_cpu)")
    x, y = torch.rand(64, device=device), torch.rand(64, device=device)
    x[5], y[9] = 1.5, -0.5
    xr = x.clone().requires_grad_()
    out = LF.binary_cross_entropy(xr, y, reduction="none")
    bad = torch.zeros(64, dtype=torch.bool, device=device)
    bad[5] = bad[9] = True
    assert torch.equal(out.isnan(), bad)
    out.backward(torch.ones_like(out))
    assert torch.equal(xr.grad.isnan(), bad)
    assert LF.binary_cross_entropy(x, y).isnan()


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    x, y = torch.rand(3, 4, device=device), torch.rand(3, 4, device=device)
    for f in (F.binary_cross_entropy, LF.binary_cross_entropy):
        with pytest.raises(ValueError, match="that is different to the input size"):
            f(x, torch.rand(3, 5, device=device))
        with pytest.raises(ValueError, match="that is different to the input size"):
            f(x, torch.rand(4, device=device))
        with pytest.raises(ValueError, match="is not a valid value for reduction"):
            f(x, y, reduction="avg")
        with pytest.raises(RuntimeError):
            f(x, y, weight=torch.rand(5, device=device))  # does not broadcast
        with pytest.raises(RuntimeError):
            f(x, y, weight=torch.rand(2, 3, 4, device=device))  # broadcasts beyond the input
        with pytest.raises(RuntimeError):
            f(x, y.double())  # target dtype differs
        with pytest.raises(NotImplementedError):
            f(x.long(), y.long())
        with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
            f(x, y, weight=torch.rand(4, device=device, requires_grad=True))
        with torch.no_grad():  # ... but fine without autograd
            f(x, y, weight=torch.rand(4, device=device, requires_grad=True))
    # The op itself (C++ callers) raises the same types and names itself.
    with pytest.raises(ValueError, match=r"binary_cross_entropy: target size \[3, 5\]"):
        OPS.binary_cross_entropy(x, torch.rand(3, 5, device=device), None, 1, [False, False])
    with pytest.raises(RuntimeError, match=r"binary_cross_entropy: the size of weight \[5\]"):
        OPS.binary_cross_entropy(x, y, torch.rand(5, device=device), 1, [False, False])
    with pytest.raises(ValueError, match="binary_cross_entropy: reduction"):
        OPS.binary_cross_entropy(x, y, None, 3, [False, False])


@pytest.mark.parametrize("wdtype", [torch.float64, torch.float16, torch.int64, torch.bool])
def test_weight_dtype_is_the_inputs(wdtype):
    # torch multiplies the weight into the input-dtype loss: the result keeps the input's dtype.
    x, y = _prob((5, 6), torch.float32, "cpu"), torch.rand(5, 6)
    w = (torch.rand(6) * 3).to(wdtype)
    a, b = LF.binary_cross_entropy(x, y, w), F.binary_cross_entropy(x, y, w)
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a, b)


def test_legacy_reduction_args():
    x, y = _prob((3, 4), torch.float32, "cpu"), torch.rand(3, 4)
    with pytest.warns(UserWarning):
        a = LF.binary_cross_entropy(x, y, size_average=False)
    torch.testing.assert_close(a, F.binary_cross_entropy(x, y, reduction="sum"))
    with pytest.warns(UserWarning):
        a = LF.binary_cross_entropy(x, y, reduce=False)
    torch.testing.assert_close(a, F.binary_cross_entropy(x, y, reduction="none"))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x = _prob((6, 5), torch.float32, device).requires_grad_()
    y = torch.rand(6, 5, device=device, requires_grad=True)
    w = torch.rand(5, device=device)
    # Every reduction x grad-mask pattern once (opcheck is slow: ~1 s a call).
    for red, mask, weight in [(0, [True, True], w), (1, [True, False], None), (1, [False, True], w),
                              (2, [True, True], w), (2, [False, False], None)]:
        opcheck(OPS.binary_cross_entropy.default, (x, y, weight, red, mask))
    for red, mask in [(0, [True, True]), (1, [True, False]), (2, [False, True])]:
        go = torch.randn((), device=device) if red else torch.randn(6, 5, device=device)
        opcheck(OPS.binary_cross_entropy_backward.default, (go, x.detach(), y.detach(), w, red, mask))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compile_fullgraph(reduction, device):
    torch._dynamo.reset()
    x = _prob((6, 5), torch.float32, device).requires_grad_()
    y, w = torch.rand(6, 5, device=device), torch.rand(5, device=device)
    f = torch.compile(LF.binary_cross_entropy, fullgraph=True)
    a = f(x, y, w, reduction=reduction)
    b = LF.binary_cross_entropy(x, y, w, reduction=reduction)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    torch.testing.assert_close(torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, x, g)[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    x = (torch.rand(4, 3, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    y = (torch.rand(4, 3, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    w = torch.rand(3, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda x, y: LF.binary_cross_entropy(x, y, w, reduction=reduction), (x, y))


def test_module_is_drop_in():
    w = torch.rand(5)
    ours = lossext.nn.BCELoss(weight=w, reduction="sum")
    theirs = torch.nn.BCELoss(weight=w, reduction="sum")
    assert isinstance(ours, torch.nn.BCELoss)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    fresh = lossext.nn.BCELoss(weight=torch.zeros(5), reduction="sum")
    fresh.load_state_dict(theirs.state_dict())
    x, y = _prob((3, 5), torch.float32, "cpu"), torch.rand(3, 5)
    torch.testing.assert_close(fresh(x, y), theirs(x, y))
    torch.testing.assert_close(lossext.nn.BCELoss()(x, y), torch.nn.BCELoss()(x, y))


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "x = torch.rand(37, 53, dtype=torch.float64) * 0.98 + 0.01; y = torch.rand(37, 53, dtype=torch.float64)\n"
        "w = torch.rand(53, dtype=torch.float64)\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16):\n"
        "    xd, yd = x.to(dt).requires_grad_(), y.to(dt)\n"
        "    a = LF.binary_cross_entropy(xd, yd, w.to(dt), reduction='sum')\n"
        "    xr = xd.detach().double().requires_grad_()\n"
        "    b = F.binary_cross_entropy(xr, yd.double(), w.to(dt).double(), reduction='sum')\n"
        "    assert abs(a.double() - b) <= 1e-2 * abs(b), (dt, a, b)\n"
        "    ga, = torch.autograd.grad(a, xd); gb, = torch.autograd.grad(b, xr)\n"
        "    assert (ga.double() - gb).abs().max() <= 2e-2 * gb.abs().max(), dt\n"
        "    n = LF.binary_cross_entropy(xd.detach()[:, :7], yd[:, :7], reduction='none')\n"
        "    assert (n.double() - F.binary_cross_entropy(xr.detach()[:, :7], yd.double()[:, :7], reduction='none')).abs().max() < 2e-2\n"
        "try:\n"
        "    LF.binary_cross_entropy(torch.tensor([0.5, 2.0]), torch.rand(2)); raise AssertionError('no error')\n"
        "except RuntimeError as e:\n"
        "    assert 'between 0 and 1' in str(e)\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
