import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, assert_close, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext

# (input shape) -> class targets have the input's shape without dim 1 ((C,) -> 0-d).
SHAPES = [(0, 5), (6,), (7, 11), (3, 6, 5), (2, 4, 3, 5), (0, 4, 3), (2, 3, 0), (5, 1), (3, 37, 2, 1, 3)]


def _classes(shape):
    return shape[1] if len(shape) > 1 else shape[0]


def _target_shape(shape):
    return () if len(shape) == 1 else (shape[0], *shape[2:])


def _class_target(shape, device, ignore_index=None, dtype=torch.long):
    C = _classes(shape)
    t = torch.randint(0, max(C, 1), _target_shape(shape), device=device)
    if ignore_index is not None and t.numel() > 1:
        t.view(-1)[::3] = ignore_index
    return t.to(dtype) if ignore_index is None or ignore_index >= 0 else t


def _weight(C, dtype, device):
    return torch.rand(C, dtype=dtype, device=device) + 0.25


def _ref_weight(w):
    return None if w is None else w.double()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_class_targets_match_torch(shape, reduction, dtype, device):
    C = _classes(shape)
    # (weighted, label_smoothing, ignore_index, target dtype): every pair of options meets at least once.
    combos = [(False, 0.0, -100, torch.long), (True, 0.3, -100, torch.long), (True, 0.0, None, torch.uint8),
              (False, 0.3, None, torch.uint8), (True, 0.3, 1, torch.long), (False, 0.0, 1, torch.long)]
    for weighted, ls, ignore_index, tdtype in combos:
        x = torch.randn(shape, dtype=dtype, device=device) * 3
        t = _class_target(shape, device, ignore_index, tdtype)
        w = _weight(C, dtype, device) if weighted else None
        ii = -100 if ignore_index is None else ignore_index
        # torch's weighted label smoothing cannot gather with uint8 targets: its reference gets int64.
        check_loss(lambda x: LF.cross_entropy(x, t, w, ignore_index=ii, reduction=reduction, label_smoothing=ls),
                   lambda x: F.cross_entropy(x, t.long(), _ref_weight(w), ignore_index=ii, reduction=reduction,
                                             label_smoothing=ls),
                   [x], dtype=dtype, check_dtype=False)
        assert LF.cross_entropy(x, t, w, ignore_index=ii, reduction=reduction).dtype == dtype


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] != 0 or len(s) == 2])
def test_probability_targets_match_torch(shape, reduction, dtype, device):
    C = _classes(shape)
    for weighted in (False, True):
        for ls in (0.0, 0.2):
            x = torch.randn(shape, dtype=dtype, device=device) * 3
            y = torch.rand(shape, dtype=dtype, device=device)  # not normalised: any float target is allowed
            w = _weight(C, dtype, device) if weighted else None
            check_loss(lambda x, y: LF.cross_entropy(x, y, w, reduction=reduction, label_smoothing=ls),
                       lambda x, y: F.cross_entropy(x, y, _ref_weight(w), reduction=reduction, label_smoothing=ls),
                       [x, y], diff=(0, 1), dtype=dtype, check_dtype=not weighted)


@pytest.mark.parametrize("device", DEVICES)
def test_probability_target_dtype_promotion(device):
    # Probability targets and weights of other dtypes promote, as torch's arithmetic does.
    x = torch.randn(4, 6, device=device, dtype=torch.float16)
    y = torch.rand(4, 6, device=device)
    w = torch.rand(6, device=device, dtype=torch.float64)
    for yy, ww in ((y, None), (y.half(), w), (y, w)):
        a = LF.cross_entropy(x, yy, ww)
        assert a.dtype == F.cross_entropy(x, yy, ww).dtype
        assert_close(a, F.cross_entropy(x.double(), yy.double(), _ref_weight(ww)), torch.float16)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_layouts(reduction, device):
    """Non-contiguous inputs: each layout path (rows, spatial, transposed, fallback) vs torch."""
    cases = []
    base = torch.randn(40, 30, device=device)
    cases.append((base.t(), torch.randint(0, 40, (30,), device=device)))                # (N, C) with stride(0) == 1
    big = torch.randn(9, 70, device=device)
    cases.append((big[:, 3:61], torch.randint(0, 58, (9,), device=device)[::1]))         # row stride > C
    cases.append((big[:, ::3], torch.randint(0, 24, (18,), device=device)[::2]))         # class stride 3, strided target
    cl = torch.randn(2, 7, 5, 4, device=device).to(memory_format=torch.channels_last)
    cases.append((cl, torch.randint(0, 7, (2, 5, 4), device=device)))                    # channels last: rows layout
    perm = torch.randn(2, 6, 4, 5, device=device).permute(0, 1, 3, 2)                     # spatial dims do not merge
    cases.append((perm, torch.randint(0, 6, (2, 5, 4), device=device).transpose(1, 2).contiguous().transpose(1, 2)))
    k1 = torch.randn(3, 8, 10, device=device)[:, :, ::2]                                 # spatial stride 2
    cases.append((k1, torch.randint(0, 8, (3, 5), device=device)))
    exp = torch.randint(0, 5, (1,), device=device).expand(6)                            # expanded target
    cases.append((torch.randn(6, 5, device=device), exp))
    w = torch.rand(30, device=device)[::3].contiguous()
    for x, t in cases:
        ww = w[: _classes(tuple(x.shape))] if _classes(tuple(x.shape)) <= 10 else None
        for ls in (0.0, 0.15):
            check_loss(lambda x: LF.cross_entropy(x, t, ww, reduction=reduction, label_smoothing=ls),
                       lambda x: F.cross_entropy(x, t, _ref_weight(ww), reduction=reduction, label_smoothing=ls), [x])
    # probability targets laid out unlike the input
    x = torch.randn(30, 40, device=device).t()
    y = torch.rand(40, 30, device=device)
    check_loss(lambda x, y: LF.cross_entropy(x, y, reduction=reduction),
               lambda x, y: F.cross_entropy(x, y, reduction=reduction), [x, y], diff=(0, 1))
    x = torch.randn(3, 5, 4, device=device)
    y = torch.rand(3, 4, 5, device=device).transpose(1, 2)
    check_loss(lambda x, y: LF.cross_entropy(x, y, reduction=reduction, label_smoothing=0.1),
               lambda x, y: F.cross_entropy(x, y, reduction=reduction, label_smoothing=0.1), [x, y], diff=(0, 1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_rows(dtype, device):
    # GPT-2's vocabulary: an odd row length (unaligned rows, vector tails) and long online sums.
    x = torch.randn(5, 50257, dtype=dtype, device=device) * 4
    t = torch.randint(0, 50257, (5,), device=device)
    w = _weight(50257, dtype, device)
    for ls in (0.0, 0.1):
        check_loss(lambda x: LF.cross_entropy(x, t, w, label_smoothing=ls),
                   lambda x: F.cross_entropy(x, t, _ref_weight(w), label_smoothing=ls), [x], dtype=dtype)
    y = torch.softmax(torch.randn(5, 50257, device=device), 1).to(dtype)
    check_loss(lambda x, y: LF.cross_entropy(x, y, reduction="none"),
               lambda x, y: F.cross_entropy(x, y, reduction="none"), [x, y], diff=(0, 1), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_many_rows_and_spatial_mean(device):
    # Many chunks: the deterministic chunked sums stay accurate and reproducible.
    x = torch.randn(20000, 13, device=device)
    t = torch.randint(0, 13, (20000,), device=device)
    check_loss(lambda x: LF.cross_entropy(x, t, label_smoothing=0.1), lambda x: F.cross_entropy(x, t, label_smoothing=0.1),
               [x])
    xs = torch.randn(4, 5, 3000, device=device)
    ts = torch.randint(0, 5, (4, 3000), device=device)
    check_loss(lambda x: LF.cross_entropy(x, ts), lambda x: F.cross_entropy(x, ts), [xs])


def test_deterministic_across_thread_counts():
    x = torch.randn(6000, 37) * 3
    t = torch.randint(0, 37, (6000,))
    xs = torch.randn(8, 9, 2000)
    ts = torch.randint(0, 9, (8, 2000))
    n = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            outs.append((LF.cross_entropy(x, t, label_smoothing=0.1), LF.cross_entropy(xs, ts, reduction="sum")))
    finally:
        torch.set_num_threads(n)
    for a, b in outs[1:]:
        assert torch.equal(a, outs[0][0]) and torch.equal(b, outs[0][1])


@pytest.mark.parametrize("device", DEVICES)
def test_special_values_match_torch(device):
    inf, nan = float("inf"), float("nan")
    rows = [[-inf, 0.0, 1.0], [0.0, -inf, 2.0], [inf, 0.0, 1.0], [nan, 0.0, 1.0], [-inf, -inf, 0.5], [3.0, 2.0, 1.0]]
    t = torch.tensor([1, 2, 0, 1, 2, 0], device=device)
    for ls in (0.0, 0.1):
        for red in REDUCTIONS:
            x = torch.tensor(rows, device=device, requires_grad=True)
            xr = x.detach().clone().requires_grad_()
            a = LF.cross_entropy(x, t, reduction=red, label_smoothing=ls)
            b = F.cross_entropy(xr, t, reduction=red, label_smoothing=ls)
            torch.testing.assert_close(a, b, equal_nan=True)
            g = torch.ones_like(b)
            torch.testing.assert_close(torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, xr, g)[0], equal_nan=True)
    y = torch.tensor([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5]], device=device)
    x = torch.tensor([[-inf, 0.0, 1.0], [nan, 0.0, 1.0]], device=device)
    torch.testing.assert_close(LF.cross_entropy(x, y, reduction="none"), F.cross_entropy(x, y, reduction="none"),
                               equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_edge_cases_match_torch(device):
    x = torch.randn(0, 5, device=device)
    e = torch.zeros(0, dtype=torch.long, device=device)
    assert LF.cross_entropy(x, e).isnan() and F.cross_entropy(x, e).isnan()
    assert LF.cross_entropy(x, e, reduction="sum") == 0
    assert LF.cross_entropy(x, e, reduction="none").shape == (0,)
    assert LF.cross_entropy(x, torch.rand(0, 5, device=device)).isnan()
    x = torch.randn(4, 5, device=device)
    ign = torch.full((4,), -100, device=device)
    for kw in ({}, {"label_smoothing": 0.2}, {"weight": torch.rand(5, device=device)}):
        assert LF.cross_entropy(x, ign, **kw).isnan() and F.cross_entropy(x, ign, **kw).isnan()
    xg = x.clone().requires_grad_()
    LF.cross_entropy(xg, ign, label_smoothing=0.2).backward()
    assert torch.equal(xg.grad, torch.zeros_like(x))  # torch: zeros as well
    # all-zero class weights: 0/0, NaN loss and NaN gradients, as torch
    t = torch.tensor([0, 1, 2, 3], device=device)
    check_loss(lambda x: LF.cross_entropy(x, t, torch.zeros(5, device=device)),
               lambda x: F.cross_entropy(x, t, torch.zeros(5, device=device, dtype=torch.float64)), [x])
    # no classes, every target ignored
    x0 = torch.randn(3, 0, device=device)
    t0 = torch.full((3,), -100, device=device)
    assert torch.equal(LF.cross_entropy(x0, t0, reduction="none"), torch.zeros(3, device=device))
    assert LF.cross_entropy(x0, t0).isnan()
    # no classes, probability targets (torch: mean NaN, sum 0)
    assert LF.cross_entropy(x0, torch.rand(3, 0, device=device)).isnan()
    assert LF.cross_entropy(x0, torch.rand(3, 0, device=device), reduction="sum") == 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unbatched_input_with_one_element_target(reduction, device):
    # torch's forward treats (C,) input with a (1,) target as one sample (0-d result), but its
    # backward raises and its label smoothing path fails on the shapes; lossext does all of it.
    x = torch.randn(6, device=device)
    t1 = torch.tensor([4], device=device)
    t0 = torch.tensor(4, device=device)
    assert_close(LF.cross_entropy(x, t1, reduction=reduction), F.cross_entropy(x, t1, reduction=reduction), torch.float32)
    for ls in (0.0, 0.3):
        check_loss(lambda x: LF.cross_entropy(x, t1, reduction=reduction, label_smoothing=ls),
                   lambda x: F.cross_entropy(x, t0, reduction=reduction, label_smoothing=ls), [x])


def _cross_entropy_errors(device):
    x = torch.randn(4, 5, device=device)
    t = torch.tensor([0, 1, 2, 3], device=device)
    return [
        (ValueError, lambda f: f(x, t[:3])),                                         # batch size
        (ValueError, lambda f: f(x, t, reduction="avg")),
        (RuntimeError, lambda f: f(x, t, label_smoothing=1.5)),
        (RuntimeError, lambda f: f(x, torch.rand(4, 5, device=device), label_smoothing=1.5)),
        (RuntimeError, lambda f: f(x, t, weight=torch.rand(4, device=device))),     # weight size
        (RuntimeError, lambda f: f(x, t, weight=torch.rand(1, 5, device=device))),
        (RuntimeError, lambda f: f(x, t, weight=torch.rand(5, device=device, dtype=torch.float64))),
        (RuntimeError, lambda f: f(x, torch.rand(4, 5, device=device), weight=torch.rand(4, device=device))),
        (RuntimeError, lambda f: f(x, t[:, None])),                                  # multi-target
        (RuntimeError, lambda f: f(torch.randn(2, 5, 3, device=device), torch.zeros(2, 4, dtype=torch.long, device=device))),
        (RuntimeError, lambda f: f(torch.randn(2, 5, 3, 2, device=device), torch.zeros(2, 3, dtype=torch.long, device=device))),
        (RuntimeError, lambda f: f(x, t.int())),                                     # target dtype
        (RuntimeError, lambda f: f(x, t.float())),
        (RuntimeError, lambda f: f(x, torch.zeros(4, 5, dtype=torch.long, device=device))),
        (RuntimeError, lambda f: f(x, torch.rand(4, 5, device=device), ignore_index=1)),
        (ValueError, lambda f: f(torch.randn(5, device=device), t[:2])),            # 1-D input, 1-D target
        (IndexError, lambda f: f(torch.tensor(1.0, device=device), t[:1])),         # 0-d input
        (IndexError, lambda f: f(torch.tensor(1.0, device=device), torch.tensor(0.5, device=device))),
        (NotImplementedError, lambda f: f(x.long(), t)),
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    for exc, call in _cross_entropy_errors(device):
        with pytest.raises(exc):
            call(F.cross_entropy)
        with pytest.raises(exc, match="cross_entropy|is not a valid value for reduction"):
            call(LF.cross_entropy)


def test_weight_is_not_differentiable():
    x, t, w = torch.randn(3, 4), torch.tensor([0, 1, 2]), torch.rand(4, requires_grad=True)
    for f in (F.cross_entropy, LF.cross_entropy):
        with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
            f(x, t, w)
    with pytest.raises(RuntimeError, match="weight"):  # torch would differentiate it here: not supported
        LF.cross_entropy(x, torch.rand(3, 4), w)
    with torch.no_grad():
        torch.testing.assert_close(LF.cross_entropy(x, t, w), F.cross_entropy(x, t, w))


def test_out_of_range_target_cpu():
    x = torch.randn(4, 5)
    for bad in (torch.tensor([0, 1, 5, 3]), torch.tensor([0, -1, 2, 3]), torch.tensor([0, 255, 2, 3], dtype=torch.uint8)):
        for kw in ({}, {"reduction": "none"}, {"label_smoothing": 0.1}):
            with pytest.raises(IndexError):
                F.cross_entropy(x, bad.long(), **kw)
            with pytest.raises(IndexError, match=f"Target {int(bad[bad != torch.arange(4)][0])} is out of bounds"):
                LF.cross_entropy(x, bad, **kw)
    with pytest.raises(IndexError):  # K-dim, spatial layout
        LF.cross_entropy(torch.randn(2, 5, 3), torch.tensor([[0, 1, 5], [0, 0, 0]]))
    x = torch.randn(4, 5, requires_grad=True)  # nothing was written: the input and its grad are untouched
    x0 = x.detach().clone()
    with pytest.raises(IndexError):
        LF.cross_entropy(x, torch.tensor([0, 1, 9, 3]), inplace_backward=True)
    assert x.grad is None and torch.equal(x.detach(), x0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_out_of_range_target_cuda_is_nan():
    # CUDA: no host sync to raise; the sample's loss and gradient row are NaN, other rows unaffected.
    x = torch.randn(4, 5, device="cuda", requires_grad=True)
    bad = torch.tensor([0, 7, 2, 3], device="cuda")
    loss = LF.cross_entropy(x, bad, reduction="none")
    assert loss[1].isnan() and not loss[[0, 2, 3]].isnan().any()
    loss.sum().backward()
    assert x.grad[1].isnan().all() and not x.grad[[0, 2, 3]].isnan().any()
    assert LF.cross_entropy(x, bad).isnan()
    ok = F.cross_entropy(x[[0, 2, 3]], bad[[0, 2, 3]], reduction="none")
    torch.testing.assert_close(loss[[0, 2, 3]], ok)


def test_legacy_and_negative_smoothing_args():
    x, t = torch.randn(3, 4), torch.tensor([0, 1, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(LF.cross_entropy(x, t, size_average=False), F.cross_entropy(x, t, reduction="sum"))
        torch.testing.assert_close(LF.cross_entropy(x, t, reduce=False), F.cross_entropy(x, t, reduction="none"))
    # torch ignores a negative label_smoothing (for both target kinds)
    torch.testing.assert_close(LF.cross_entropy(x, t, label_smoothing=-0.5), F.cross_entropy(x, t))
    y = torch.rand(3, 4)
    torch.testing.assert_close(LF.cross_entropy(x, y, label_smoothing=-0.5), F.cross_entropy(x, y, label_smoothing=-0.5))


@pytest.mark.parametrize("device", DEVICES)
def test_lse_and_backward_op(device):
    x = torch.randn(5, 7, device=device)
    t = torch.tensor([0, -100, 3, 6, 2], device=device)
    w = torch.rand(7, device=device)
    for red in (0, 1, 2):
        loss, g, gt, saved = OPS.cross_entropy(x, t, w, red, -100, 0.1, [True, False])
        active = t != -100
        assert saved.shape == (5, 2)  # (max, log sum exp(x - max)) per row
        torch.testing.assert_close(saved[active].sum(1), torch.logsumexp(x, 1)[active])
        go = torch.randn(loss.shape, device=device)
        gb, _ = OPS.cross_entropy_backward(go, x, t, w, red, -100, 0.1, saved, [True, False])
        xr = x.clone().requires_grad_()
        ref = F.cross_entropy(xr, t, w, reduction=["none", "mean", "sum"][red], label_smoothing=0.1)
        torch.testing.assert_close(gb, torch.autograd.grad(ref, xr, go)[0])
        if red:
            torch.testing.assert_close(g * go, gb)
        else:
            assert g.numel() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x = torch.randn(6, 5, device=device, requires_grad=True)
    t = torch.tensor([0, 1, 4, -100, 2, 2], device=device)
    y = torch.rand(6, 5, device=device, requires_grad=True)
    xk = torch.randn(3, 5, 4, device=device, requires_grad=True)
    tk = torch.randint(0, 5, (3, 4), device=device, dtype=torch.uint8)
    w = torch.rand(5, device=device)
    for red in (0, 1, 2):
        for mask in ([True, False], [False, False]):
            opcheck(OPS.cross_entropy.default, (x, t, w, red, -100, 0.1, mask))
            opcheck(OPS.cross_entropy.default, (xk, tk, w, red, 3, 0.0, mask))
        for mask in ([True, False], [False, True], [True, True]):
            opcheck(OPS.cross_entropy.default, (x, y, None, red, -100, 0.2, mask))
        go = torch.randn((), device=device) if red else torch.randn(6, device=device)
        lse = OPS.cross_entropy(x, y, w, red, -100, 0.0, [False, False])[3]
        opcheck(OPS.cross_entropy_backward.default, (go, x.detach(), y.detach(), w, red, -100, 0.0, lse, [True, True]))
        lse = OPS.cross_entropy(x, t, w, red, -100, 0.3, [False, False])[3]
        opcheck(OPS.cross_entropy_backward.default, (go, x.detach(), t, w, red, -100, 0.3, lse, [True, False]))
        opcheck(OPS.cross_entropy_inplace.default, (torch.randn(6, 5, device=device), t, w, red, -100, 0.1))
        opcheck(OPS.cross_entropy_inplace_backward.default, (torch.randn(6, 5, device=device), go, red))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("inplace", [False, True])
def test_compile_fullgraph(inplace, device):
    x = torch.randn(6, 5, device=device)
    t = torch.tensor([0, 1, 4, -100, 2, 2], device=device)
    w = torch.rand(5, device=device)
    for red in ("mean", "none"):
        torch._dynamo.reset()
        f = torch.compile(lambda x, t: LF.cross_entropy(x, t, w, reduction=red, label_smoothing=0.1,
                                                        inplace_backward=inplace), fullgraph=True)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        a = f(xa, t)
        b = F.cross_entropy(xb, t, w, reduction=red, label_smoothing=0.1)
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape, device=device)
        a.backward(g)
        b.backward(g)
        torch.testing.assert_close(xa.grad, xb.grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 4, -100, 2])
    w = torch.rand(5, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(
        lambda x: LF.cross_entropy(x, t, w, reduction=reduction, label_smoothing=0.2), (x,))
    y = torch.rand(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, y: LF.cross_entropy(x, y, w, reduction=reduction, label_smoothing=0.1), (x, y))
    xk = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    tk = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    assert torch.autograd.gradcheck(lambda x: LF.cross_entropy(x, tk, reduction=reduction, label_smoothing=0.3), (xk,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_inplace_backward(reduction, dtype, device):
    for shape, ls, weighted in (((7, 33), 0.1, True), ((3, 6, 5), 0.0, False), ((9,), 0.2, True)):
        C = _classes(shape)
        x0 = torch.randn(shape, dtype=dtype, device=device) * 2
        t = _class_target(shape, device, -100)
        w = _weight(C, dtype, device) if weighted else None
        x = x0.clone().requires_grad_()
        ptr = x.data_ptr()
        loss = LF.cross_entropy(x, t, w, reduction=reduction, label_smoothing=ls, inplace_backward=True)
        assert not torch.equal(x.detach(), x0), "the logits were not overwritten"
        xr = x0.double().requires_grad_()
        ref = F.cross_entropy(xr, t, _ref_weight(w), reduction=reduction, label_smoothing=ls)
        assert_close(loss, ref, dtype, "loss")
        g = torch.randn(ref.shape, dtype=torch.float64, device=device)
        loss.backward(g.to(dtype), retain_graph=True)
        assert_close(x.grad, torch.autograd.grad(ref, xr, g)[0], dtype, "grad")
        if len(shape) > 1:
            assert x.grad.data_ptr() == ptr  # the gradient is the logits' memory: no copy
        with pytest.raises(RuntimeError, match="only once"):
            loss.backward(g.to(dtype))
    # Inputs the in-place path does not apply to run the ordinary path and stay untouched.
    x0 = torch.randn(8, 6, dtype=dtype, device=device)
    t = torch.randint(0, 6, (8,), device=device)
    for x in (x0.t().contiguous().t().requires_grad_(), x0.clone()):
        before = x.detach().clone()
        LF.cross_entropy(x, t[: x.shape[0]], reduction=reduction, inplace_backward=True)
        assert torch.equal(x.detach(), before)


def test_inplace_backward_detects_saved_logits():
    h = torch.randn(4, 5, requires_grad=True)
    logits = h.exp()  # exp saves its output for its backward
    loss = LF.cross_entropy(logits, torch.tensor([0, 1, 2, 3]), inplace_backward=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_module_is_drop_in():
    w = torch.rand(5)
    ours = lossext.nn.CrossEntropyLoss(weight=w, ignore_index=2, reduction="sum", label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(weight=w, ignore_index=2, reduction="sum", label_smoothing=0.1)
    assert isinstance(ours, torch.nn.CrossEntropyLoss)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    fresh = lossext.nn.CrossEntropyLoss(weight=torch.zeros(5), ignore_index=2, reduction="sum", label_smoothing=0.1)
    fresh.load_state_dict(theirs.state_dict())
    x, t = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 2])
    torch.testing.assert_close(fresh(x, t), theirs(x, t))
    inp = lossext.nn.CrossEntropyLoss(label_smoothing=0.1, inplace_backward=True)
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    inp(xa, t).backward()
    torch.nn.CrossEntropyLoss(label_smoothing=0.1)(xb, t).backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "torch.manual_seed(0)\n"
        "x = torch.randn(37, 53, dtype=torch.float64) * 3; t = torch.randint(0, 53, (37,)); t[::5] = -100\n"
        "xs = torch.randn(3, 7, 45, dtype=torch.float64); ts = torch.randint(0, 7, (3, 45)); y = torch.rand(37, 53)\n"
        "w = torch.rand(53, dtype=torch.float64)\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16):\n"
        "    for xx, tt, kw in ((x, t, dict(weight=w.to(dt), label_smoothing=0.1)), (xs, ts, {}), (x, y.to(dt), {})):\n"
        "        a = xx.to(dt).detach().clone().requires_grad_(); b = xx.to(dt).double().detach().clone().requires_grad_()\n"
        "        la = LF.cross_entropy(a, tt, reduction='sum', **kw)\n"
        "        lb = F.cross_entropy(b, tt.double() if tt.is_floating_point() else tt, reduction='sum',\n"
        "                             **{k: (v.double() if torch.is_tensor(v) else v) for k, v in kw.items()})\n"
        "        la.backward(); lb.backward()\n"
        "        assert abs(la.double() - lb) <= 2e-2 * (1 + abs(lb)), (dt, la, lb)\n"
        "        assert (a.grad.double() - b.grad).abs().max() <= 2e-2 * (1 + b.grad.abs().max()), dt\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
