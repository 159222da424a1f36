import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext

SHAPES = [(), (0,), (7,), (4, 5), (2, 3, 4), (3, 0, 2), (129, 67)]


def _inputs(shape, dtype, device, weight, pos_weight):
    x = torch.randn(shape, dtype=dtype, device=device) * 3
    y = torch.rand(shape, dtype=dtype, device=device)
    c = shape[-1:] if shape else ()
    w = {None: None, "class": torch.rand(c, dtype=dtype, device=device) + 0.5,
         "full": torch.rand(shape, dtype=dtype, device=device), "scalar": torch.tensor(1.7, dtype=dtype, device=device)}[weight]
    pw = None if not pos_weight else torch.rand(c, dtype=dtype, device=device) * 2 + 0.1
    return x, y, w, pw


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch(shape, reduction, dtype, device):
    for weight in [None, "class", "full", "scalar"]:
        for pos_weight in [False, True]:
            x, y, w, pw = _inputs(shape, dtype, device, weight, pos_weight)
            check_loss(lambda x, y: LF.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw),
                       lambda x, y: F.binary_cross_entropy_with_logits(
                           x, y, None if w is None else w.double(), reduction=reduction,
                           pos_weight=None if pw is None else pw.double()),
                       [x, y], diff=(0, 1), dtype=dtype, check_dtype=False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_strided_and_expanded(reduction, device):
    base = torch.randn(40, 30, device=device)
    x = base.t()                                   # transposed
    y = torch.rand(30, 1, device=device).expand(30, 40)  # broadcast view (stride 0)
    w = torch.rand(80, device=device)[::2]         # strided weight
    pw = torch.rand(1, 40, device=device) + 0.5
    check_loss(lambda x, y: LF.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw),
               lambda x, y: F.binary_cross_entropy_with_logits(x, y, w.double(), reduction=reduction,
                                                               pos_weight=pw.double()),
               [x, y], diff=(0, 1))
    xs = torch.randn(8, 6, 10, device=device)[:, ::2, 1:9]  # sliced, non-mergeable dims
    ys = torch.rand(8, 3, 8, device=device)
    check_loss(lambda x, y: LF.binary_cross_entropy_with_logits(x, y, reduction=reduction),
               lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction=reduction), [xs, ys], diff=(0, 1))


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last(device):
    x = torch.randn(2, 3, 5, 4, device=device).to(memory_format=torch.channels_last)
    y = torch.rand(2, 3, 5, 4, device=device)
    out = check_loss(lambda x, y: LF.binary_cross_entropy_with_logits(x, y, reduction="none"),
                     lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction="none"), [x, y], diff=(0, 1))
    assert out.shape == x.shape


@pytest.mark.parametrize("device", DEVICES)
def test_large_mean(device):
    # Many elements: the deterministic blocked sum must stay accurate in float32.
    x = torch.randn(3_000_001, device=device)
    y = torch.rand(3_000_001, device=device)
    check_loss(lambda x, y: LF.binary_cross_entropy_with_logits(x, y),
               lambda x, y: F.binary_cross_entropy_with_logits(x, y), [x, y], diff=(0,))
    a = LF.binary_cross_entropy_with_logits(x, y)
    b = LF.binary_cross_entropy_with_logits(x, y)
    assert torch.equal(a, b), "reduction is not deterministic"


@pytest.mark.parametrize("device", DEVICES)
def test_infinite_logits_match_torch(device):
    x = torch.tensor([float("inf"), float("-inf"), float("inf"), float("-inf"), 0.0], device=device)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5], device=device)
    for pw in [None, torch.full((5,), 2.0, device=device)]:
        a = LF.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw)
        b = F.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pw)
        torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    x, y = torch.randn(3, 4, device=device), torch.rand(3, 5, device=device)
    for f in (F.binary_cross_entropy_with_logits, LF.binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match="must be the same as input size"):
            f(x, y)
        with pytest.raises(ValueError, match="is not a valid value for reduction"):
            f(x, x, reduction="avg")
        with pytest.raises(RuntimeError):
            f(x, x, weight=torch.rand(7, device=device))  # does not broadcast
    # The op itself (C++ callers) raises the same types and names itself.
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits"):
        OPS.binary_cross_entropy_with_logits(x, y, None, None, 1, [False, False])
    with pytest.raises(RuntimeError, match="binary_cross_entropy_with_logits: .*floating"):
        OPS.binary_cross_entropy_with_logits(x.long(), x.long(), None, None, 1, [False, False])


def test_legacy_reduction_args():
    x, y = torch.randn(3, 4), torch.rand(3, 4)
    with pytest.warns(UserWarning):
        a = LF.binary_cross_entropy_with_logits(x, y, size_average=False)
    torch.testing.assert_close(a, F.binary_cross_entropy_with_logits(x, y, reduction="sum"))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x = torch.randn(6, 5, device=device, requires_grad=True)
    y = torch.rand(6, 5, device=device, requires_grad=True)
    w, pw = torch.rand(5, device=device), torch.rand(5, device=device)
    for red in (0, 1, 2):
        for mask in ([True, False], [False, False], [True, True], [False, True]):
            opcheck(OPS.binary_cross_entropy_with_logits.default, (x, y, w, pw, red, mask))
            opcheck(OPS.binary_cross_entropy_with_logits.default, (x, y, None, None, red, mask))
        go = torch.randn((), device=device) if red else torch.randn(6, 5, device=device)
        opcheck(OPS.binary_cross_entropy_with_logits_backward.default,
                (go, x.detach(), y.detach(), w, pw, red, [True, True]))
    opcheck(OPS.scale_grad.default, (torch.randn(3, 4, device=device), torch.tensor(2.0, device=device)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compile_fullgraph(reduction, device):
    torch._dynamo.reset()
    x = torch.randn(6, 5, device=device, requires_grad=True)
    y, w, pw = torch.rand(6, 5, device=device), torch.rand(5, device=device), torch.rand(5, device=device)
    f = torch.compile(LF.binary_cross_entropy_with_logits, fullgraph=True)
    a = f(x, y, w, reduction=reduction, pos_weight=pw)
    b = LF.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    torch.testing.assert_close(torch.autograd.grad(a, x, g)[0], torch.autograd.grad(b, x, g)[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    w, pw = torch.rand(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(
        lambda x, y: LF.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw), (x, y))


def test_module_is_drop_in():
    w, pw = torch.rand(5), torch.rand(5)
    ours = lossext.nn.BCEWithLogitsLoss(weight=w, reduction="sum", pos_weight=pw)
    theirs = torch.nn.BCEWithLogitsLoss(weight=w, reduction="sum", pos_weight=pw)
    assert isinstance(ours, torch.nn.BCEWithLogitsLoss)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    fresh = lossext.nn.BCEWithLogitsLoss(weight=torch.zeros(5), reduction="sum", pos_weight=torch.zeros(5))
    fresh.load_state_dict(theirs.state_dict())
    x, y = torch.randn(3, 5), torch.rand(3, 5)
    torch.testing.assert_close(fresh(x, y), theirs(x, y))


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "x = torch.randn(37, 53, dtype=torch.float64); y = torch.rand(37, 53, dtype=torch.float64)\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16):\n"
        "    a = LF.binary_cross_entropy_with_logits(x.to(dt), y.to(dt), reduction='sum')\n"
        "    b = F.binary_cross_entropy_with_logits(x.to(dt).double(), y.to(dt).double(), reduction='sum')\n"
        "    assert abs(a.double() - b) <= 1e-2 * abs(b), (dt, a, b)\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
