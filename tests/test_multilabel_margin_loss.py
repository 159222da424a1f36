"""multilabel_margin_loss against torch.

Values and gradients over shapes (empty batch, 0-d and unbatched inputs, one class, long rows,
strided and transposed inputs), target lists (none, all classes, duplicates, entries after the
first -1), every reduction and the four dtypes; ties, infinities and NaN as torch; out-of-range
targets (RuntimeError on the CPU, NaN on CUDA); errors with torch's types; the separate backward
(reduction none) from the saved is-target buffer; opcheck, torch.compile, gradcheck, module,
legacy reduction args, determinism, every CPU ISA.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext
SHAPES = [(5, 7), (7,), (), (1, 7), (3, 1), (0, 4), (33, 100), (2, 700), (2, 1500)]


def _targets(shape, device, g=None, dup=False):
    """Per row: k distinct classes (k random, 0..C), then -1, then junk in [-1, C)."""
    g = g or torch.Generator().manual_seed(0)
    rows = 1 if len(shape) < 2 else shape[0]
    C = 1 if len(shape) == 0 else shape[-1]
    out = torch.randint(-1, C, (rows, C), generator=g)
    for n in range(rows):
        k = int(torch.randint(0, C + 1, (1,), generator=g))
        perm = torch.randperm(C, generator=g)[:k]
        if dup and k >= 2:
            perm[-1] = perm[0]
        out[n, :k] = perm
        if k < C:
            out[n, k] = -1
    return out.reshape(shape).to(device)


def _mlm(x, t, reduction, dtype=None):
    return check_loss(lambda a: LF.multilabel_margin_loss(a, t, reduction=reduction),
                      lambda a: F.multilabel_margin_loss(a, t.to(a.device), reduction=reduction),
                      [x], diff=(0,), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_torch(shape, reduction, dtype, device):
    if shape[:1] == (0,) and reduction != "none":
        pytest.skip("empty batch: torch returns uninitialised memory (see test_empty_batch)")
    for seed, dup in ((0, False), (1, True), (2, False)):
        x = (torch.randn(shape, device=device) * 2).to(dtype)
        out = _mlm(x, _targets(shape, device, torch.Generator().manual_seed(seed), dup), reduction)
        if reduction == "none":
            assert out.shape == (shape[:1] if len(shape) == 2 else ())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_layouts(reduction, device):
    # A transposed input and a sliced one (made contiguous), rows with a stride, a strided target.
    base = torch.randn(40, 64, device=device)
    for x in (base.t()[:30], base[:30, ::2], base[:30, 1:38]):
        t = _targets(tuple(x.shape), device)
        _mlm(x, t, reduction)
        _mlm(x, torch.cat([t, t], 1)[:, ::2].contiguous().t().contiguous().t(), reduction)


@pytest.mark.parametrize("device", DEVICES)
def test_ties_infinities_and_nan_match_torch_exactly(device):
    inf, nan = float("inf"), float("nan")
    x = torch.tensor([[0.0, 1.0, 0.0, -1.0], [1.0, nan, 2.0, 0.5], [-inf, 0.0, 1.0, 2.0], [inf, 0.0, 1.0, 2.0],
                      [nan, 0.0, 1.0, 2.0], [3.0, inf, -inf, 0.0], [0.5, 0.5, 0.5, 0.5]],
                     dtype=torch.float64, device=device)
    t = torch.tensor([[1, -1, 0, 0], [0, 2, -1, 3], [0, -1, 3, 3], [0, 1, -1, -1], [0, -1, -1, -1],
                      [3, 1, -1, 2], [0, 0, 1, -1]], device=device)
    for red in REDUCTIONS:
        res = []
        for f in (LF.multilabel_margin_loss, F.multilabel_margin_loss):
            xi = x.clone().requires_grad_()
            out = f(xi, t, reduction=red)
            res.append((out, torch.autograd.grad(out.sum(), xi)[0]))
        for a, b in zip(*res):
            torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    x = torch.randn(0, 5, device=device, requires_grad=True)
    t = torch.zeros(0, 5, dtype=torch.long, device=device)
    assert LF.multilabel_margin_loss(x, t).isnan()
    loss = LF.multilabel_margin_loss(x, t, reduction="sum")
    assert loss.item() == 0
    (g,) = torch.autograd.grad(loss, x)
    assert g.shape == (0, 5)
    assert LF.multilabel_margin_loss(x, t, reduction="none").shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
def test_separate_backward_with_grad_output(device):
    x = torch.randn(9, 13, device=device)
    t = _targets((9, 13), device, dup=True)
    for red in REDUCTIONS:
        check_loss(lambda a: LF.multilabel_margin_loss(a, t, reduction=red),
                   lambda a: F.multilabel_margin_loss(a, t, reduction=red), [x])


def test_out_of_range_target_raises_on_cpu():
    x = torch.randn(3, 4)
    for row in ([0, 4, -1, 0], [0, -2, -1, 0], [0, -1, 7, 0]):  # also after the first -1, as torch
        t = torch.tensor([[0, 1, -1, 2], row, [1, -1, 0, 0]])
        with pytest.raises(RuntimeError, match="out of range"):
            F.multilabel_margin_loss(x, t)
        with pytest.raises(RuntimeError, match=r"multilabel_margin_loss: target .* is out of range"):
            LF.multilabel_margin_loss(x, t)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_out_of_range_target_is_nan_on_cuda():
    x = torch.randn(4, 6, device="cuda", requires_grad=True)
    t = torch.tensor([[0, 1, -1, 0, 0, 0], [6, -1, 0, 0, 0, 0], [0, -1, 9, 0, 0, 0], [2, 3, 4, -1, 0, 0]],
                     device="cuda")
    out = LF.multilabel_margin_loss(x, t, reduction="none")
    assert out[1].isnan() and out[2].isnan()
    ok = torch.tensor([0, 3])
    torch.testing.assert_close(out[ok], F.multilabel_margin_loss(x[ok], t[ok], reduction="none"))
    (g,) = torch.autograd.grad(LF.multilabel_margin_loss(x, t, reduction="sum"), x)
    assert g[1:3].isnan().all() and not g[ok].isnan().any()


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    x = torch.randn(3, 4, device=device)
    t = _targets((3, 4), device)
    cases = [
        ((x, t.int()), RuntimeError),
        ((x, t.float()), RuntimeError),
        ((x, t[:2]), RuntimeError),
        ((x, t[:, :3]), RuntimeError),
        ((x, t[0]), RuntimeError),
        ((x[0], t[:1]), RuntimeError),
        ((torch.randn(3, 0, device=device), t[:, :0]), RuntimeError),
        ((torch.randn(2, 3, 4, device=device), torch.zeros(2, 3, 4, dtype=torch.long, device=device)), RuntimeError),
        ((x.int(), t), NotImplementedError),
        ((x.to(torch.complex64), t), NotImplementedError),
    ]
    for args, exc in cases:
        with pytest.raises(exc):
            F.multilabel_margin_loss(*args)
        with pytest.raises(exc):
            LF.multilabel_margin_loss(*args)
    with pytest.raises(RuntimeError, match=r"multilabel_margin_loss: inconsistent target size: \[2, 4\] for input of size: \[3, 4\]"):
        LF.multilabel_margin_loss(x, t[:2])
    for f in (F.multilabel_margin_loss, LF.multilabel_margin_loss):
        with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
            f(x, t, reduction="bad")


def _case(device, dtype=torch.float32):
    return torch.randn(6, 9, device=device, dtype=dtype), _targets((6, 9), device, dup=True)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x, t = _case(device)
    op, bwd = OPS.multilabel_margin_loss.default, OPS.multilabel_margin_loss_backward.default
    for red in (0, 1, 2):
        for mask in ([True], [False]):
            opcheck(op, (x.clone().requires_grad_(), t, red, mask))
        is_target = op(x, t, red, [False])[2]
        go = torch.randn((), device=device) if red else torch.randn(6, device=device)
        opcheck(bwd, (go, x, t, red, is_target, [True]))
    opcheck(op, (x[0].clone().requires_grad_(), t[0], 0, [True]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compile_fullgraph(reduction, device):
    x, t = _case(device)
    leaf = x.clone().requires_grad_()
    f = lambda a: LF.multilabel_margin_loss(a, t, reduction=reduction)  # noqa: E731
    compiled = torch.compile(f, fullgraph=True)
    a, b = compiled(leaf), f(leaf)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    torch.testing.assert_close(torch.autograd.grad(a, leaf, g)[0], torch.autograd.grad(b, leaf, g)[0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    x, t = _case("cpu", torch.float64)
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: LF.multilabel_margin_loss(a, t, reduction=reduction), [leaf])


def test_second_derivative_is_the_losss_own():
    """torch raises here (no double backward); lossext's second derivative passes gradgradcheck."""
    x, t = _case("cpu", torch.float64)
    leaf = x.clone().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda a: LF.multilabel_margin_loss(a, t, reduction="sum"), [leaf])


def test_module_is_drop_in():
    x, t = _case("cpu")
    for kwargs in [{}, {"reduction": "sum"}, {"reduction": "none"}]:
        ours, theirs = lossext.nn.MultiLabelMarginLoss(**kwargs), torch.nn.MultiLabelMarginLoss(**kwargs)
        assert isinstance(ours, torch.nn.MultiLabelMarginLoss)
        assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
        leaf = x.clone().requires_grad_()
        a, b = ours(leaf, t), theirs(leaf, t)
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape)
        torch.testing.assert_close(torch.autograd.grad(a, leaf, g)[0], torch.autograd.grad(b, leaf, g)[0])


def test_legacy_reduction_args():
    x, t = _case("cpu")
    for sa, rd in [(None, False), (False, None), (True, True), (False, True)]:
        with pytest.warns(UserWarning):
            a = LF.multilabel_margin_loss(x, t, size_average=sa, reduce=rd)
        with pytest.warns(UserWarning):
            b = F.multilabel_margin_loss(x, t, size_average=sa, reduce=rd)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_large_and_deterministic(device):
    x = torch.randn(3000, 100, device=device)
    t = _targets((3000, 100), device)
    _mlm(x, t, "mean")
    threads = torch.get_num_threads()
    try:
        res = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            a = x.clone().requires_grad_()
            loss = LF.multilabel_margin_loss(a, t)
            res.append((loss, torch.autograd.grad(loss, a)[0]))
        for r in res[1:]:
            assert all(torch.equal(p, q) for p, q in zip(res[0], r))
    finally:
        torch.set_num_threads(threads)


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = torch.randn(37, 53, dtype=torch.float64, generator=g)\n"
        "t = torch.randint(-1, 53, (37, 53), generator=g); t[:, 5] = -1\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):\n"
        "    for red in ('sum', 'none'):\n"
        "        a_in = x.to(dt).requires_grad_(); b_in = x.to(dt).double().requires_grad_()\n"
        "        a = LF.multilabel_margin_loss(a_in, t, reduction=red)\n"
        "        b = F.multilabel_margin_loss(b_in, t, reduction=red)\n"
        "        assert (a.double() - b).abs().max() <= 1e-2 * (1 + b.abs().max()), (dt, red)\n"
        "        ga, = torch.autograd.grad(a.sum(), a_in); gb, = torch.autograd.grad(b.sum(), b_in)\n"
        "        assert (ga.double() - gb).abs().max() <= 1e-2 * (1 + gb.abs().max()), (dt, red, 'grad')\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
