import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext

SHAPES = [(0, 5), (6,), (7, 11), (3, 6, 5), (2, 4, 3, 5), (0, 4, 3), (2, 3, 0), (5, 1), (3, 7, 2, 1, 3)]


def _classes(shape):
    return shape[1] if len(shape) > 1 else shape[0]


def _target(shape, device, ignore_index, dtype):
    t = torch.randint(0, _classes(shape), () if len(shape) == 1 else (shape[0], *shape[2:]), device=device)
    if ignore_index is not None and t.numel() > 1:
        t.view(-1)[::3] = ignore_index
    return t.to(dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch(shape, reduction, dtype, device):
    C = _classes(shape)
    for weighted, ignore_index, tdtype in ((False, -100, torch.long), (True, -100, torch.long),
                                           (True, None, torch.uint8), (False, 2, torch.long)):
        x = torch.randn(shape, dtype=dtype, device=device)
        t = _target(shape, device, ignore_index, tdtype)
        w = torch.rand(C, dtype=dtype, device=device) + 0.25 if weighted else None
        ii = -100 if ignore_index is None else ignore_index
        # torch's K-dim nll_loss rejects uint8 targets (its 2-D one accepts them): the reference gets int64.
        check_loss(lambda x: LF.nll_loss(x, t, w, ignore_index=ii, reduction=reduction),
                   lambda x: F.nll_loss(x, t.long(), None if w is None else w.double(), ignore_index=ii,
                                        reduction=reduction),
                   [x], dtype=dtype, check_dtype=False)
        assert LF.nll_loss(x, t, w, ignore_index=ii, reduction=reduction).dtype == dtype


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_strided_inputs(reduction, device):
    cases = [
        (torch.randn(30, 40, device=device).t(), torch.randint(0, 30, (40,), device=device)),
        (torch.randn(6, 20, device=device)[:, ::3], torch.randint(0, 7, (12,), device=device)[::2]),
        (torch.randn(2, 7, 5, 4, device=device).to(memory_format=torch.channels_last),
         torch.randint(0, 7, (2, 5, 4), device=device)),
        (torch.randn(2, 6, 4, 5, device=device).permute(0, 1, 3, 2), torch.randint(0, 6, (2, 5, 4), device=device)),
        (torch.randn(3, 5, device=device), torch.randint(0, 5, (1,), device=device).expand(3)),
    ]
    for x, t in cases:
        # torch's own backward refuses some strided inputs ("grad_input must be contiguous")
        check_loss(lambda x: LF.nll_loss(x, t, reduction=reduction),
                   lambda x: F.nll_loss(x.contiguous(), t, reduction=reduction), [x])


@pytest.mark.parametrize("device", DEVICES)
def test_edge_cases_match_torch(device):
    x = torch.randn(0, 5, device=device)
    e = torch.zeros(0, dtype=torch.long, device=device)
    assert LF.nll_loss(x, e).isnan() and LF.nll_loss(x, e, reduction="sum") == 0
    x = torch.randn(4, 5, device=device)
    ign = torch.full((4,), -100, device=device)
    assert LF.nll_loss(x, ign).isnan() and F.nll_loss(x, ign).isnan()
    t = torch.tensor([0, 1, 2, 3], device=device)
    check_loss(lambda x: LF.nll_loss(x, t, torch.zeros(5, device=device)),
               lambda x: F.nll_loss(x, t, torch.zeros(5, device=device, dtype=torch.float64)), [x])
    # (C,) input with a (1,) target: one sample (torch's forward agrees; its backward raises)
    x1 = torch.randn(6, device=device)
    check_loss(lambda x: LF.nll_loss(x, torch.tensor([4], device=device)),
               lambda x: F.nll_loss(x, torch.tensor(4, device=device)), [x1])


def _errors(device):
    x = torch.randn(4, 5, device=device)
    t = torch.tensor([0, 1, 2, 3], device=device)
    return [
        (ValueError, lambda f: f(x, t[:3])),
        (ValueError, lambda f: f(x, t, reduction="avg")),
        (ValueError, lambda f: f(torch.tensor(1.0, device=device), torch.tensor(0, device=device))),
        (ValueError, lambda f: f(torch.randn(5, device=device), t[:2])),
        (RuntimeError, lambda f: f(x, t, weight=torch.rand(4, device=device))),
        (RuntimeError, lambda f: f(x, t, weight=torch.rand(5, device=device, dtype=torch.float64))),
        (RuntimeError, lambda f: f(x, t[:, None])),
        (RuntimeError, lambda f: f(x, torch.rand(4, 5, device=device))),
        (RuntimeError, lambda f: f(torch.randn(2, 5, 3, device=device), torch.zeros(2, 4, dtype=torch.long, device=device))),
        (RuntimeError, lambda f: f(x, t.int())),
        (NotImplementedError, lambda f: f(x.long(), t)),
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    for exc, call in _errors(device):
        with pytest.raises(exc):
            call(F.nll_loss)
        with pytest.raises(exc, match="nll_loss|is not a valid value for reduction"):
            call(LF.nll_loss)


def test_weight_is_not_differentiable():
    x, t, w = torch.randn(3, 4), torch.tensor([0, 1, 2]), torch.rand(4, requires_grad=True)
    for f in (F.nll_loss, LF.nll_loss):
        with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
            f(x, t, w)


def test_out_of_range_target_cpu():
    x = torch.randn(4, 5, requires_grad=True)
    for bad, value in ((torch.tensor([0, 5, 2, 3]), 5), (torch.tensor([-2, 1, 2, 3]), -2),
                       (torch.tensor([0, 1, 200, 3], dtype=torch.uint8), 200)):
        for red in REDUCTIONS:
            with pytest.raises(IndexError):
                F.nll_loss(x, bad.long(), reduction=red)
            with pytest.raises(IndexError, match=f"Target {value} is out of bounds"):
                LF.nll_loss(x, bad, reduction=red)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_out_of_range_target_cuda_is_nan():
    x = torch.randn(4, 5, device="cuda", requires_grad=True)
    bad = torch.tensor([0, 9, 2, 3], device="cuda")
    loss = LF.nll_loss(x, bad, reduction="none")
    assert loss[1].isnan() and not loss[[0, 2, 3]].isnan().any()
    loss.sum().backward()
    assert x.grad[1].isnan().all() and not x.grad[[0, 2, 3]].isnan().any()
    assert LF.nll_loss(x, bad).isnan()


def test_legacy_reduction_args():
    x, t = torch.randn(3, 4), torch.tensor([0, 1, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(LF.nll_loss(x, t, size_average=False), F.nll_loss(x, t, reduction="sum"))


def test_deterministic_across_thread_counts():
    x = torch.randn(70000, 9)
    t = torch.randint(0, 9, (70000,))
    w = torch.rand(9)
    n = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(LF.nll_loss(x, t, w))
    finally:
        torch.set_num_threads(n)
    assert torch.equal(outs[0], outs[1])
    torch.testing.assert_close(outs[0], F.nll_loss(x, t, w))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x = torch.randn(6, 5, device=device, requires_grad=True)
    t = torch.tensor([0, 1, 4, -100, 2, 2], device=device)
    xk = torch.randn(3, 5, 4, device=device, requires_grad=True)
    tk = torch.randint(0, 5, (3, 4), device=device, dtype=torch.uint8)
    w = torch.rand(5, device=device)
    for red in (0, 1, 2):
        for mask in ([True], [False]):
            opcheck(OPS.nll_loss.default, (x, t, w, red, -100, mask))
            opcheck(OPS.nll_loss.default, (xk, tk, None, red, 1, mask))
        go = torch.randn((), device=device) if red else torch.randn(6, device=device)
        opcheck(OPS.nll_loss_backward.default, (go, x.detach(), t, w, red, -100, [True]))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    torch._dynamo.reset()
    x = torch.randn(6, 5, device=device)
    t = torch.tensor([0, 1, 4, -100, 2, 2], device=device)
    w = torch.rand(5, device=device)
    f = torch.compile(lambda x: LF.nll_loss(x, t, w), fullgraph=True)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = f(xa), F.nll_loss(xb, t, w)
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    torch.testing.assert_close(xa.grad, xb.grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 4, -100, 2])
    w = torch.rand(5, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda x: LF.nll_loss(x, t, w, reduction=reduction), (x,))
    xk = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    tk = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    assert torch.autograd.gradcheck(lambda x: LF.nll_loss(x, tk, reduction=reduction), (xk,))


def test_module_is_drop_in():
    w = torch.rand(5)
    ours = lossext.nn.NLLLoss(weight=w, ignore_index=1, reduction="sum")
    theirs = torch.nn.NLLLoss(weight=w, ignore_index=1, reduction="sum")
    assert isinstance(ours, torch.nn.NLLLoss)
    assert repr(ours) == repr(theirs)
    fresh = lossext.nn.NLLLoss(weight=torch.zeros(5), ignore_index=1, reduction="sum")
    fresh.load_state_dict(theirs.state_dict())
    x, t = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 1])
    torch.testing.assert_close(fresh(x, t), theirs(x, t))


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "x = torch.randn(37, 53, dtype=torch.float64); t = torch.randint(0, 53, (37,)); t[::4] = -100\n"
        "w = torch.rand(53, dtype=torch.float64)\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16):\n"
        "    a = LF.nll_loss(x.to(dt), t, w.to(dt), reduction='sum')\n"
        "    b = F.nll_loss(x.to(dt).double(), t, w.to(dt).double(), reduction='sum')\n"
        "    assert abs(a.double() - b) <= 1e-2 * (1 + abs(b)), (dt, a, b)\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
