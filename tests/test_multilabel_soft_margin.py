import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext

# 1-D (unbatched), 2-D, >2-D (classes last), empty batch, empty classes, one class, long rows.
SHAPES = [(7,), (4, 5), (2, 3, 4), (0, 5), (3, 0), (1, 1), (6, 1), (129, 67)]
WEIGHTS = [None, "class", "full", "scalar", "row"]


def _weight(kind, shape, dtype, device):
    if kind is None:
        return None
    if kind == "class":
        return torch.rand(shape[-1:], dtype=dtype, device=device) + 0.5
    if kind == "full":
        return torch.rand(shape, dtype=dtype, device=device)
    if kind == "scalar":
        return torch.tensor(1.7, dtype=dtype, device=device)
    return torch.rand(shape[:-1] + (1,), dtype=dtype, device=device)  # "row": per sample


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch(shape, reduction, dtype, device):
    for kind in WEIGHTS:
        x = torch.randn(shape, dtype=dtype, device=device) * 3
        y = torch.rand(shape, dtype=dtype, device=device)
        if kind == "full":
            y = (y > 0.5).to(dtype)  # the usual multi-hot target, too
        w = _weight(kind, shape, dtype, device)
        check_loss(lambda x, y: LF.multilabel_soft_margin_loss(x, y, w, reduction=reduction),
                   lambda x, y: F.multilabel_soft_margin_loss(
                       x, y, None if w is None else w.to(x.dtype), reduction=reduction),
                   [x, y], diff=(0, 1), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_strided_and_expanded(reduction, device):
    # Transposed input: the class dimension is not the unit-stride one (rows are gathered).
    x = (torch.randn(30, 40, device=device) * 2).t()
    y = torch.rand(1, 30, device=device).expand(40, 30)  # broadcast view (stride 0)
    w = torch.rand(60, device=device)[::2]               # strided weight
    check_loss(lambda x, y: LF.multilabel_soft_margin_loss(x, y, w, reduction=reduction),
               lambda x, y: F.multilabel_soft_margin_loss(x, y, w.to(x.dtype), reduction=reduction), [x, y],
               diff=(0, 1))
    xs = torch.randn(8, 6, 10, device=device)[:, ::2, 1:9]  # sliced, non-mergeable dims
    ys = torch.rand(8, 3, 8, device=device)
    check_loss(lambda x, y: LF.multilabel_soft_margin_loss(x, y, reduction=reduction),
               lambda x, y: F.multilabel_soft_margin_loss(x, y, reduction=reduction), [xs, ys], diff=(0, 1))
    xh = torch.randn(5, 21, dtype=torch.bfloat16, device=device)[:, ::3]  # strided bfloat16 rows
    yh = torch.rand(5, 7, dtype=torch.bfloat16, device=device)
    check_loss(lambda x, y: LF.multilabel_soft_margin_loss(x, y, reduction=reduction),
               lambda x, y: F.multilabel_soft_margin_loss(x, y, reduction=reduction), [xh, yh], diff=(0, 1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_broadcast_target(reduction, device):
    # torch's composite broadcasts the target against the input; so do we (input gradient only:
    # a broadcast target's gradient would need a sum over the broadcast dimensions).
    x = torch.randn(6, 5, device=device)
    for y in (torch.rand(5, device=device), torch.rand(6, 1, device=device), torch.tensor(0.3, device=device)):
        check_loss(lambda x, y: LF.multilabel_soft_margin_loss(x, y, reduction=reduction),
                   lambda x, y: F.multilabel_soft_margin_loss(x, y, reduction=reduction), [x, y], diff=(0,))


@pytest.mark.parametrize("device", DEVICES)
def test_rows_long_and_short(device):
    # 'none' sums each row in one thread (CPU) / one warp or block (CUDA): long rows, many short rows.
    for shape in [(3, 70_001), (50_000, 3), (2, 5, 1500)]:
        x, y = torch.randn(shape, device=device), torch.rand(shape, device=device)
        check_loss(lambda x, y: LF.multilabel_soft_margin_loss(x, y, reduction="none"),
                   lambda x, y: F.multilabel_soft_margin_loss(x, y, reduction="none"), [x, y], diff=(0,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_deterministic_across_thread_counts(reduction, device):
    x, y = torch.randn(512, 3001, device=device), torch.rand(512, 3001, device=device)
    a = LF.multilabel_soft_margin_loss(x, y, reduction=reduction)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        b = LF.multilabel_soft_margin_loss(x, y, reduction=reduction)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b)
    assert torch.equal(a, LF.multilabel_soft_margin_loss(x, y, reduction=reduction))


@pytest.mark.parametrize("device", DEVICES)
def test_infinite_logits_match_torch(device):
    x = torch.tensor([[float("inf"), float("-inf"), float("inf"), float("-inf"), 0.0, 60.0, -60.0]], device=device)
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.5, 0.3, 0.3]], device=device)
    # Column by column, so one NaN does not hide the others.
    for j in range(x.shape[1]):
        xa, xb = x[:, j:j + 1].clone().requires_grad_(), x[:, j:j + 1].clone().requires_grad_()
        a = LF.multilabel_soft_margin_loss(xa, y[:, j:j + 1], reduction="none")
        b = F.multilabel_soft_margin_loss(xb, y[:, j:j + 1], reduction="none")
        torch.testing.assert_close(a, b, equal_nan=True)
        a.sum().backward()
        b.sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_promotion_matches_torch(device):
    x = torch.randn(4, 6, device=device)
    cases = [(torch.rand(4, 6, dtype=torch.float64, device=device), None),              # float64 target
             ((torch.rand(4, 6, device=device) > 0.5).long(), None),                    # integer target
             (torch.rand(4, 6, device=device), torch.rand(6, dtype=torch.float64, device=device)),
             (torch.rand(4, 6, device=device), torch.tensor([1, 2, 0, 3, 1, 1], device=device)),
             (torch.rand(4, 6, dtype=torch.float16, device=device), None)]
    for y, w in cases:
        for reduction in REDUCTIONS:
            a = LF.multilabel_soft_margin_loss(x, y, w, reduction=reduction)
            b = F.multilabel_soft_margin_loss(x, y, w, reduction=reduction)
            assert a.dtype == b.dtype, (y.dtype, None if w is None else w.dtype)
            # Against float64 math: torch's composite rounds intermediates (1 - y in float16,
            # logsigmoid in float32 before promoting to float64); we compute once in the result dtype.
            ref = F.multilabel_soft_margin_loss(x.double(), y.double(), None if w is None else w.double(),
                                                reduction=reduction)
            torch.testing.assert_close(a.double(), ref, rtol=1e-6, atol=1e-6)
    xr = x.clone().requires_grad_()
    LF.multilabel_soft_margin_loss(xr, torch.rand(4, 6, dtype=torch.float64, device=device)).backward()
    assert xr.grad.dtype == torch.float32


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    x, y = torch.randn(3, 4, device=device), torch.rand(3, 4, device=device)
    for f in (F.multilabel_soft_margin_loss, LF.multilabel_soft_margin_loss):
        with pytest.raises(RuntimeError):
            f(x, torch.rand(3, 5, device=device))
        with pytest.raises(RuntimeError):
            f(x, y, weight=torch.rand(5, device=device))
        with pytest.raises(RuntimeError):
            f(x, (y > 0.5))  # bool target: 1 - target is not defined
        with pytest.raises(IndexError):
            f(torch.tensor(0.5, device=device), torch.tensor(1.0, device=device))
        with pytest.raises(NotImplementedError):
            f(x.long(), y)
        with pytest.raises(ValueError, match="avg is not valid"):
            f(x, y, reduction="avg")
    # Deliberate deviations (documented): a weight that requires grad is refused (torch would
    # differentiate its composite), and target/weight may not broadcast beyond the input's shape
    # (torch would then sum over a dimension that is not the class dimension).
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        LF.multilabel_soft_margin_loss(x, y, weight=torch.rand(4, device=device, requires_grad=True))
    with pytest.raises(RuntimeError, match=r"multilabel_soft_margin_loss: the size of target \[2, 3, 4\]"):
        LF.multilabel_soft_margin_loss(x, torch.rand(2, 3, 4, device=device))
    # The op itself (C++ callers) names itself and the shapes.
    with pytest.raises(RuntimeError, match=r"multilabel_soft_margin_loss: the size of weight \[5\] .* \[3, 4\]"):
        OPS.multilabel_soft_margin_loss(x, y, torch.rand(5, device=device), 1, [False, False])
    with pytest.raises(RuntimeError, match=r"multilabel_soft_margin_loss: expected grad_output of shape \[3\]"):
        OPS.multilabel_soft_margin_loss_backward(torch.rand(4, device=device), x, y, None, 0, [True, False])


def test_legacy_reduction_args():
    x, y = torch.randn(3, 4), torch.rand(3, 4)
    with pytest.warns(UserWarning):
        a = LF.multilabel_soft_margin_loss(x, y, size_average=False)
    torch.testing.assert_close(a, F.multilabel_soft_margin_loss(x, y, reduction="sum"))
    with pytest.warns(UserWarning):
        a = LF.multilabel_soft_margin_loss(x, y, reduce=False)
    torch.testing.assert_close(a, F.multilabel_soft_margin_loss(x, y, reduction="none"))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x = torch.randn(6, 5, device=device, requires_grad=True)
    y = torch.rand(6, 5, device=device, requires_grad=True)
    w = torch.rand(5, device=device)
    for red, mask, weight in [(0, [True, True], w), (1, [True, False], None), (1, [False, True], w),
                              (2, [True, True], w), (2, [False, False], None)]:
        opcheck(OPS.multilabel_soft_margin_loss.default, (x, y, weight, red, mask))
    opcheck(OPS.multilabel_soft_margin_loss.default, (x[0], y[0], w, 0, [True, True]))  # 1-D: 0-d 'none'
    for red, mask in [(0, [True, True]), (1, [True, False]), (2, [False, True])]:
        go = torch.randn((), device=device) if red else torch.randn(6, device=device)
        opcheck(OPS.multilabel_soft_margin_loss_backward.default, (go, x.detach(), y.detach(), w, red, mask))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compile_fullgraph(reduction, device):
    torch._dynamo.reset()
    x = torch.randn(6, 5, device=device, requires_grad=True)
    y, w = torch.rand(6, 5, device=device), torch.rand(5, device=device)
    f = torch.compile(LF.multilabel_soft_margin_loss, fullgraph=True)
    a = f(x, y, w, reduction=reduction)
    b = LF.multilabel_soft_margin_loss(x, y, w, reduction=reduction)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    torch.testing.assert_close(torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, x, g)[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(
        lambda x, y: LF.multilabel_soft_margin_loss(x, y, w, reduction=reduction), (x, y))
    x1, y1 = x[0].detach().requires_grad_(), y[0].detach().requires_grad_()  # unbatched
    assert torch.autograd.gradcheck(lambda x, y: LF.multilabel_soft_margin_loss(x, y, reduction=reduction), (x1, y1))


def test_module_is_drop_in():
    w = torch.rand(5)
    ours = lossext.nn.MultiLabelSoftMarginLoss(weight=w, reduction="none")
    theirs = torch.nn.MultiLabelSoftMarginLoss(weight=w, reduction="none")
    assert isinstance(ours, torch.nn.MultiLabelSoftMarginLoss)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    fresh = lossext.nn.MultiLabelSoftMarginLoss(weight=torch.zeros(5), reduction="none")
    fresh.load_state_dict(theirs.state_dict())
    x, y = torch.randn(3, 5), (torch.rand(3, 5) > 0.5).float()
    torch.testing.assert_close(fresh(x, y), theirs(x, y))
    torch.testing.assert_close(lossext.nn.MultiLabelSoftMarginLoss()(x, y), torch.nn.MultiLabelSoftMarginLoss()(x, y))


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "x = torch.randn(37, 53, dtype=torch.float64) * 4; y = torch.rand(37, 53, dtype=torch.float64)\n"
        "x[0, :4] = torch.tensor([float('inf'), -float('inf'), 95.0, -95.0], dtype=torch.float64)\n"
        "y[0, :4] = torch.tensor([0.0, 1.0, 0.5, 0.5], dtype=torch.float64)\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16):\n"
        "    xd, yd = x.to(dt).requires_grad_(), y.to(dt)\n"
        "    xr = xd.detach().double().requires_grad_()\n"
        "    for red in ('none', 'sum'):\n"
        "        a = LF.multilabel_soft_margin_loss(xd, yd, reduction=red)\n"
        "        b = F.multilabel_soft_margin_loss(xr, yd.double(), reduction=red)\n"
        "        torch.testing.assert_close(a.double(), b, rtol=1e-2, atol=1e-3)\n"
        "        g = torch.rand(a.shape, dtype=torch.float64)\n"
        "        ga, = torch.autograd.grad(a, xd, g.to(dt)); gb, = torch.autograd.grad(b, xr, g)\n"
        "        assert (ga.double() - gb).abs().max() <= 2e-2 * gb.abs().max(), (dt, red)\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
