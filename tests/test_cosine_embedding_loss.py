"""cosine_embedding_loss against torch.

Values and gradients over shapes (empty batch, zero features, unbatched (D) with a 0-d target, long
rows, broadcast batch and feature dims, strided/expanded/transposed operands), every reduction,
the four dtypes and margins (negative included); input1 and input2 are differentiable, the target
only compared (targets outside {1, -1} give 0, as torch; integer, bool and float64 targets); zero
vectors, ties at the hinge and NaN as torch; errors, opcheck, torch.compile, gradcheck, the module,
every CPU ISA, determinism.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext
# (input1 shape, input2 shape, target shape)
SHAPES = [((7,), (7,), ()), ((4, 5), (4, 5), (4,)), ((0, 5), (0, 5), (0,)), ((3, 0), (3, 0), (3,)),
          ((33, 129), (33, 129), (33,)), ((2, 4099), (2, 4099), (2,)), ((1, 1), (1, 1), (1,))]


def _target(shape, device, dtype=torch.float32):
    """Mostly +-1, with values torch also accepts and treats as neither: 0, 2, 0.5."""
    pool = torch.tensor([1, -1, 1, -1, 0, 2, 0.5], device=device)
    return pool[torch.randint(0, len(pool), shape, device=device)].to(dtype)


def _ce(x1, x2, y, reduction, margin, dtype=None):
    return check_loss(lambda a, b: LF.cosine_embedding_loss(a, b, y, margin=margin, reduction=reduction),
                      lambda a, b: F.cosine_embedding_loss(a, b, y.to(a.device), margin=margin, reduction=reduction),
                      [x1, x2], diff=(0, 1), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_matches_torch(shapes, reduction, dtype, device):
    s1, s2, st = shapes
    for margin in (0.0, 0.3, -0.4):
        x1 = torch.randn(s1, dtype=dtype, device=device)
        # Correlated pairs, so that y == -1 rows land on both sides of the margin.
        x2 = (0.7 * x1.float() + torch.randn(s2, device=device)).to(dtype)
        _ce(x1, x2, _target(st, device), reduction, margin)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_broadcasting(reduction, device):
    # torch's composite broadcasts the batch and feature dims (x1 * x2) and the target against the rows.
    for s1, s2, st in [((4, 5), (1, 5), (4,)), ((1, 5), (4, 5), (1,)), ((1, 5), (1, 5), (4,)),
                       ((4, 5), (4, 1), (4,)), ((4, 1), (1, 5), (1,))]:
        x1, x2 = torch.randn(s1, device=device), torch.randn(s2, device=device)
        out = _ce(x1, x2, _target(st, device), reduction, 0.1)
        if reduction == "none":
            assert out.shape == F.cosine_embedding_loss(x1, x2, _target(st, device), reduction="none").shape


@pytest.mark.parametrize("device", DEVICES)
def test_strided_expanded(device):
    base = torch.randn(40, 30, device=device)
    x1 = base.t()[1:, ::3]                                   # (29, 14): rows strided
    x2 = torch.randn(14, device=device).expand(29, 14)       # stride 0 along the batch
    x3 = torch.randn(14, 29, device=device).t()              # transposed
    y = _target((58,), device)[::2]
    for red in REDUCTIONS:
        _ce(x1, x2, y, red, 0.1)
        _ce(x3, x1, y, red, -0.2)


@pytest.mark.parametrize("device", DEVICES)
def test_target_dtypes(device):
    x1, x2 = torch.randn(9, 6, device=device), torch.randn(9, 6, device=device)
    vals = torch.tensor([1, -1, 0, 2, 1, -1, -1, 1, 3], device=device)
    for tdt in (torch.int64, torch.int32, torch.int8, torch.float64, torch.float16, torch.bfloat16):
        y = vals.to(tdt)
        for red in REDUCTIONS:
            _ce(x1, x2, y, red, 0.2)
    yb = torch.tensor([True, False] * 4 + [True], device=device)  # True == 1: the y == 1 term
    _ce(x1, x2, yb, "none", 0.0)
    # float64 targets are compared exactly: 1 + 1e-12 is neither 1 nor -1.
    y64 = torch.tensor([1 + 1e-12, -1 - 1e-12, 1, -1, 1, 1, 1, 1, 1], dtype=torch.float64, device=device)
    torch.testing.assert_close(LF.cosine_embedding_loss(x1, x2, y64, reduction="none"),
                               F.cosine_embedding_loss(x1, x2, y64, reduction="none"))


@pytest.mark.parametrize("device", DEVICES)
def test_operand_dtypes(device):
    # The loss takes the operands' promoted dtype (integers: the default float dtype), gradients
    # come back in each operand's dtype.
    for d1, d2 in [(torch.float16, torch.float32), (torch.bfloat16, torch.float64), (torch.float32, torch.int64),
                   (torch.int64, torch.int64)]:
        a = torch.randint(-3, 4, (5, 4), device=device).to(d1).requires_grad_(d1.is_floating_point)
        b = torch.randint(-3, 4, (5, 4), device=device).to(d2).requires_grad_(d2.is_floating_point)
        y = _target((5,), device)
        for red in REDUCTIONS:
            out, ref = LF.cosine_embedding_loss(a, b, y, reduction=red), F.cosine_embedding_loss(a, b, y, reduction=red)
            assert out.dtype == ref.dtype
            torch.testing.assert_close(out, ref, atol=1e-2, rtol=1e-2)
        ins = [t for t in (a, b) if t.requires_grad]
        if ins:
            out, ref = LF.cosine_embedding_loss(a, b, y), F.cosine_embedding_loss(a, b, y)
            for g, gr in zip(torch.autograd.grad(out, ins), torch.autograd.grad(ref, ins)):
                assert g.dtype == gr.dtype
                torch.testing.assert_close(g, gr, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_zero_vectors_ties_nan_match_torch_exactly(device):
    # Zero vectors: cos = 0 (the eps on the squared norms), finite gradients. cos == margin: the
    # hinge's gradient passes (clamp_min's >=). NaN features: NaN loss for a counted row; a row
    # whose target is neither 1 nor -1 has loss 0 (torch's where).
    nan = float("nan")
    x1 = torch.tensor([[0., 0, 0], [1, 0, 0], [1, 0, 0], [1, 2, nan], [1, 2, nan], [3, 4, 0], [0, 0, 0]], device=device,
                      dtype=torch.float64)
    x2 = torch.tensor([[1., 2, 3], [1, 0, 0], [0, 1, 0], [1, 1, 1], [1, 1, 1], [4, 3, 0], [0, 0, 0]], device=device,
                      dtype=torch.float64)
    y = torch.tensor([1., -1, -1, -1, 0, -1, -1], device=device)
    for margin in (0.0, 0.96, -1.0):
        for red in REDUCTIONS:
            res = []
            for f in (LF.cosine_embedding_loss, F.cosine_embedding_loss):
                ins = [t.clone().requires_grad_() for t in (x1, x2)]
                out = f(*ins, y, margin=margin, reduction=red)
                res.append((out, *torch.autograd.grad(out.sum(), ins)))
            for a, b in zip(*res):
                torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_target_is_not_differentiable(device):
    x1 = torch.randn(5, 3, device=device, requires_grad=True)
    x2 = torch.randn(5, 3, device=device)
    y = _target((5,), device).requires_grad_()
    for f in (F.cosine_embedding_loss, LF.cosine_embedding_loss):
        assert not f(x1.detach(), x2, y).requires_grad
        f(x1, x2, y).backward()
        assert y.grad is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        LF.cosine_embedding_loss(x1.detach(), x2, y).backward()


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    t = lambda *s: torch.randn(s, device=device)  # noqa: E731
    cases = [
        (t(4, 5), t(4, 5), t(4, 1)),      # 2-D target
        (t(5), t(5), t(1)),               # 1-D target with 1-D inputs
        (t(4, 5), t(4, 5), t()),          # 0-d target with 2-D inputs
        (t(2, 4, 5), t(2, 4, 5), t(2)),   # 3-D inputs
        (t(4, 5), t(4, 3), t(4)),         # features do not broadcast
        (t(4, 5), t(3, 5), t(4)),         # batches do not broadcast
        (t(4, 5), t(4, 5), t(2)),         # target does not broadcast
    ]
    for args in cases:
        with pytest.raises(RuntimeError) as theirs:
            F.cosine_embedding_loss(*args)
        with pytest.raises(RuntimeError) as ours:
            LF.cosine_embedding_loss(*args)
        if "expects" in str(theirs.value) or "multi-target" in str(theirs.value):
            assert str(ours.value).splitlines()[0] == str(theirs.value).splitlines()[0]
    for f in (F.cosine_embedding_loss, LF.cosine_embedding_loss):
        with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
            f(t(3, 2), t(3, 2), t(3), reduction="bad")
    with pytest.raises(NotImplementedError):
        LF.cosine_embedding_loss(t(3, 2).to(torch.complex64), t(3, 2), t(3))


# ---- op-level ------------------------------------------------------------------------------------

def _case(dev, dt=torch.float32):
    x1 = torch.randn(6, 5, device=dev, dtype=dt)
    return [x1, (x1 + torch.randn(6, 5, device=dev, dtype=dt)), _target((6,), dev, dt)], {"margin": 0.25}


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    args, kw = _case(device)
    op, bwd = OPS.cosine_embedding_loss.default, OPS.cosine_embedding_loss_backward.default
    for red in (0, 1, 2):
        leaves = [a.clone().requires_grad_(i < 2) for i, a in enumerate(args)]
        for mask in ([True, True], [False, False], [True, False], [False, True]):
            opcheck(op, (*leaves, kw["margin"], red, mask))
        saved = op(*args, kw["margin"], red, [False, False])[3]
        go = torch.randn((), device=device) if red else torch.randn(6, device=device)
        opcheck(bwd, (go, *args, kw["margin"], red, saved, [True, True]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compile_fullgraph(reduction, device):
    args, kw = _case(device)
    leaves = [a.clone().requires_grad_(i < 2) for i, a in enumerate(args)]
    f = LF.cosine_embedding_loss
    compiled = torch.compile(lambda *a: f(*a, reduction=reduction, **kw), fullgraph=True)
    a, b = compiled(*leaves), f(*leaves, reduction=reduction, **kw)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    for ga, gb in zip(torch.autograd.grad(a, leaves[:2], g), torch.autograd.grad(b, leaves[:2], g)):
        torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    args, kw = _case("cpu", torch.float64)
    leaves = [a.clone().requires_grad_(i < 2) for i, a in enumerate(args)]
    assert torch.autograd.gradcheck(lambda a, b: LF.cosine_embedding_loss(a, b, leaves[2], reduction=reduction, **kw),
                                    leaves[:2])


def test_module_is_drop_in():
    args, kw = _case("cpu")
    for kwargs in [{}, dict(kw, reduction="sum"), {"reduction": "none"}]:
        ours, theirs = lossext.nn.CosineEmbeddingLoss(**kwargs), torch.nn.CosineEmbeddingLoss(**kwargs)
        assert isinstance(ours, torch.nn.CosineEmbeddingLoss)
        assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
        leaves = [a.clone().requires_grad_(i < 2) for i, a in enumerate(args)]
        a, b = ours(*leaves), theirs(*leaves)
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape)
        for ga, gb in zip(torch.autograd.grad(a, leaves[:2], g), torch.autograd.grad(b, leaves[:2], g)):
            torch.testing.assert_close(ga, gb)


def test_legacy_reduction_args():
    args, kw = _case("cpu")
    for sa, rd in [(None, False), (False, None), (True, True), (False, True)]:
        with pytest.warns(UserWarning):
            a = LF.cosine_embedding_loss(*args, size_average=sa, reduce=rd, **kw)
        with pytest.warns(UserWarning):
            b = F.cosine_embedding_loss(*args, size_average=sa, reduce=rd, **kw)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_large_and_deterministic(device):
    n, d = 20000, 96
    x1, x2 = torch.randn(n, d, device=device), torch.randn(n, d, device=device)
    y = _target((n,), device)
    _ce(x1, x2, y, "mean", 0.05)
    threads = torch.get_num_threads()
    try:
        res = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
            loss = LF.cosine_embedding_loss(a, b, y, margin=0.05)
            res.append((loss, *torch.autograd.grad(loss, (a, b))))
        for r in res[1:]:
            assert all(torch.equal(p, q) for p, q in zip(res[0], r))
    finally:
        torch.set_num_threads(threads)


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x1 = torch.randn(37, 53, dtype=torch.float64, generator=g); x2 = x1 + torch.randn(37, 53, dtype=torch.float64, generator=g)\n"
        "y = torch.randint(-1, 3, (37,), generator=g).double()\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):\n"
        "    for red in ('sum', 'none'):\n"
        "        a_in = [t.to(dt).requires_grad_() for t in (x1, x2)]; b_in = [t.to(dt).double().requires_grad_() for t in (x1, x2)]\n"
        "        a = LF.cosine_embedding_loss(*a_in, y, 0.1, reduction=red); b = F.cosine_embedding_loss(*b_in, y, 0.1, reduction=red)\n"
        "        assert (a.double() - b).abs().max() <= 1e-2 * (1 + b.abs().max()), (dt, red)\n"
        "        for ga, gb in zip(torch.autograd.grad(a.sum(), a_in), torch.autograd.grad(b.sum(), b_in)):\n"
        "            assert (ga.double() - gb).abs().max() <= 1e-2 * (1 + gb.abs().max()), (dt, red, 'grad')\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
