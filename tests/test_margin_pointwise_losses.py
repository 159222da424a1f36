"""margin_ranking_loss and hinge_embedding_loss against torch.

Values and gradients over shapes (empty, 0-d, broadcast, strided/expanded), every reduction, the
four dtypes and margins (negative included); margin_ranking differentiates all three operands (as
torch's composite does), hinge_embedding only the input. Targets outside {1, -1} (hinge takes both
terms), integer and bool targets, ties at the hinge and NaN as torch, errors, opcheck,
torch.compile, gradcheck, modules, every CPU ISA.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext
SHAPES = [(), (0,), (7,), (4, 5), (2, 3, 4), (3, 0, 2), (129, 67)]


def _signs(shape, dtype, device, scaled=False):
    y = torch.randint(0, 2, shape, device=device).to(dtype) * 2 - 1
    return y * (torch.rand(shape, device=device, dtype=dtype) + 0.5) if scaled else y


def _hinge_target(shape, dtype, device):
    """Mostly +-1, with values torch also accepts: 0, 2, 0.5 (both terms apply)."""
    pool = torch.tensor([1, -1, 1, -1, 0, 2, 0.5], dtype=dtype, device=device)
    return pool[torch.randint(0, len(pool), shape, device=device)]


def _mr(x1, x2, y, reduction, margin, dtype=None):
    return check_loss(lambda a, b, c: LF.margin_ranking_loss(a, b, c, margin=margin, reduction=reduction),
                      lambda a, b, c: F.margin_ranking_loss(a, b, c, margin=margin, reduction=reduction),
                      [x1, x2, y], diff=(0, 1, 2), dtype=dtype)


def _he(x, t, reduction, margin, dtype=None):
    return check_loss(lambda a, b: LF.hinge_embedding_loss(a, b, margin=margin, reduction=reduction),
                      lambda a, b: F.hinge_embedding_loss(a, b, margin=margin, reduction=reduction),
                      [x, t], diff=(0,), dtype=dtype)


# ---- margin_ranking_loss -------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_margin_ranking_matches_torch(shape, reduction, dtype, device):
    for margin, scaled in [(0.0, False), (0.5, True), (-0.3, False)]:
        x1 = torch.randn(shape, dtype=dtype, device=device)
        x2 = torch.randn(shape, dtype=dtype, device=device)
        _mr(x1, x2, _signs(shape, dtype, device, scaled), reduction, margin)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_broadcasting(reduction, device):
    # Equal ranks, size-1 dims broadcast in any operand; gradients are summed back to each shape.
    for s1, s2, s3 in [((4, 1), (1, 3), (4, 3)), ((4, 3), (4, 3), (1, 1)), ((1, 3), (4, 1), (1, 1)),
                       ((5, 1, 3), (1, 4, 1), (5, 4, 3)), ((1,), (6,), (1,)), ((2, 1, 1), (1, 1, 7), (1, 3, 1))]:
        x1, x2 = torch.randn(s1, device=device), torch.randn(s2, device=device)
        out = _mr(x1, x2, _signs(s3, torch.float32, device, True), reduction, 0.2)
        if reduction == "none":
            assert out.shape == torch.broadcast_shapes(s1, s2, s3)


@pytest.mark.parametrize("device", DEVICES)
def test_margin_ranking_strided_expanded(device):
    base = torch.randn(40, 30, device=device)
    x1 = base.t()[1:, ::3]                                   # (29, 14), non-contiguous
    x2 = torch.randn(14, device=device).expand(29, 14)       # stride 0
    y = _signs((29, 28), torch.float32, device)[:, ::2]
    for red in REDUCTIONS:
        _mr(x1, x2, y, red, 0.1)
    cl = torch.randn(2, 3, 4, 5, device=device).to(memory_format=torch.channels_last)
    _mr(cl, torch.randn(2, 3, 4, 5, device=device), _signs((2, 3, 4, 5), torch.float32, device), "none", 0.3)


@pytest.mark.parametrize("device", DEVICES)
def test_margin_ranking_dtypes(device):
    x1, x2 = torch.randn(6, 5, device=device), torch.randn(6, 5, device=device)
    for tdt in (torch.int64, torch.int32, torch.int8):  # integer targets, as torch accepts
        y = _signs((6, 5), tdt, device)
        for red in REDUCTIONS:
            check_loss(lambda a, b: LF.margin_ranking_loss(a, b, y, 0.5, reduction=red),
                       lambda a, b: F.margin_ranking_loss(a, b, y.to(a.device), 0.5, reduction=red),
                       [x1, x2], diff=(0, 1))
    # Promotion: the loss takes the three operands' promoted dtype; gradients their own dtypes.
    combos = [(torch.float16, torch.float32, torch.float64), (torch.bfloat16, torch.bfloat16, torch.float32),
              (torch.float32, torch.float16, torch.int64)]
    for d1, d2, d3 in combos:
        a = torch.randn(4, 3, device=device).to(d1).requires_grad_()
        b = torch.randn(4, 3, device=device).to(d2).requires_grad_(d2.is_floating_point)
        y = _signs((4, 3), d3, device).requires_grad_(d3.is_floating_point)
        out, ref = LF.margin_ranking_loss(a, b, y), F.margin_ranking_loss(a, b, y)
        assert out.dtype == ref.dtype
        torch.testing.assert_close(out, ref, atol=1e-2, rtol=1e-2)
        ins = [t for t in (a, b, y) if t.requires_grad]
        for g, gr in zip(torch.autograd.grad(out, ins), torch.autograd.grad(ref, ins)):
            assert g.dtype == gr.dtype
            torch.testing.assert_close(g, gr, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_margin_ranking_integer_operands(device):
    # All-integer operands: the default float dtype, as torch's `+ margin`.
    g = torch.Generator().manual_seed(1)
    i1, i2 = torch.randint(-3, 4, (5, 4), generator=g).to(device), torch.randint(-3, 4, (5, 4), generator=g).to(device)
    y = (torch.randint(0, 2, (5, 4), generator=g) * 2 - 1).to(device)
    for red in REDUCTIONS:
        a, b = LF.margin_ranking_loss(i1, i2, y, 0.5, reduction=red), F.margin_ranking_loss(i1, i2, y, 0.5, reduction=red)
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_margin_ranking_ties_and_nan_match_torch_exactly(device):
    # u = margin - y (x1 - x2): at u == 0 the gradient passes (clamp_min's >=); a NaN u gives a NaN
    # loss and no gradient through the clamp, but a NaN y still makes dx NaN (chain rule).
    nan = float("nan")
    x1 = torch.tensor([1., 2., nan, 1., 3., 0.5, 2.], device=device)
    x2 = torch.tensor([1., 1., 0., nan, 1., 0.5, 1.], device=device)
    y = torch.tensor([1., 1., 1., -1., nan, 1., -2.], device=device)
    for margin in (0.0, 1.0, -1.0):
        for red in REDUCTIONS:
            res = []
            for f in (LF.margin_ranking_loss, F.margin_ranking_loss):
                ins = [t.clone().requires_grad_() for t in (x1, x2, y)]
                out = f(*ins, margin=margin, reduction=red)
                res.append((out, *torch.autograd.grad(out.sum(), ins)))
            for a, b in zip(*res):
                torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_margin_ranking_errors_match_torch(device):
    t = lambda *s: torch.randn(s, device=device)  # noqa: E731
    cases = [
        ((t(3), t(1, 3), t(3)), RuntimeError),       # ranks differ: torch's functional refuses
        ((t(), t(3), t(3)), RuntimeError),
        ((t(3), t(4), t(3)), RuntimeError),          # does not broadcast
        ((t(3), t(3), torch.ones(3, dtype=torch.bool, device=device)), RuntimeError),  # -bool
        ((torch.ones(3, dtype=torch.bool, device=device),) * 2 + (t(3),), RuntimeError),  # bool - bool
        ((torch.ones(3, dtype=torch.bool, device=device), t(3), t(3)), RuntimeError),  # bool - float (fuzz)
        ((t(3), t(3).to(torch.complex64), t(3)), NotImplementedError),  # torch's clamp_min (fuzz)
    ]
    for args, exc in cases:
        with pytest.raises(exc):
            F.margin_ranking_loss(*args)
        with pytest.raises(exc):
            LF.margin_ranking_loss(*args)
    with pytest.raises(RuntimeError, match="All input tensors should have same dimension"):
        LF.margin_ranking_loss(t(3), t(1, 3), t(3))
    with pytest.raises(RuntimeError, match="input2"):
        LF.margin_ranking_loss(t(3), t(4), t(3))
    for f in (F.margin_ranking_loss, LF.margin_ranking_loss):
        with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
            f(t(3), t(3), t(3), reduction="bad")


# ---- hinge_embedding_loss ------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_hinge_matches_torch(shape, reduction, dtype, device):
    for margin in (1.0, 0.5, -0.5, 0.0):
        x = torch.randn(shape, dtype=dtype, device=device) * 2
        _he(x, _hinge_target(shape, dtype, device), reduction, margin)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_broadcasting_strided(reduction, device):
    for xs, ts in [((3,), (4, 1, 3)), ((4, 3), (3,)), ((4, 1), (1, 5)), ((), (6,)), ((6,), ())]:
        out = _he(torch.randn(xs, device=device) * 2, _hinge_target(ts, torch.float32, device), reduction, 0.7)
        if reduction == "none":
            assert out.shape == torch.broadcast_shapes(xs, ts)
    x = (torch.randn(40, 30, device=device) * 2).t()[1:, ::3]
    _he(x, _hinge_target((29, 1), torch.float32, device).expand(29, 14), reduction, 1.0)
    _he(x, _hinge_target((14, 29), torch.float32, device).t(), reduction, 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_hinge_target_dtypes(device):
    # Integer, bool and wider float targets: compared with +-1 as torch does; the loss keeps the
    # input's dtype whatever the target's.
    x = torch.randn(6, 7, device=device) * 2
    vals = torch.tensor([1, -1, 0, 2, 1, -1], device=device)
    for tdt in (torch.int64, torch.int32, torch.int8, torch.bool, torch.float64, torch.float16):
        t = (vals[torch.randint(0, 6, (6, 7), device=device)] if tdt != torch.bool
             else torch.rand(6, 7, device=device) > 0.5).to(tdt)
        for red in REDUCTIONS:
            check_loss(lambda a: LF.hinge_embedding_loss(a, t, 0.5, reduction=red),
                       lambda a: F.hinge_embedding_loss(a, t.to(a.device), 0.5, reduction=red), [x], diff=(0,))
    for xdt in (torch.float16, torch.bfloat16):
        xh = x.to(xdt)
        t64 = vals[torch.randint(0, 6, (6, 7), device=device)].double()
        assert LF.hinge_embedding_loss(xh, t64).dtype == F.hinge_embedding_loss(xh, t64).dtype == xdt
        assert LF.hinge_embedding_loss(xh, t64, reduction="none").dtype == xdt


@pytest.mark.parametrize("device", DEVICES)
def test_hinge_target_is_not_differentiable(device):
    # As torch: the target gets no gradient, and it alone does not make the loss require grad.
    x = torch.randn(5, device=device, requires_grad=True)
    t = _hinge_target((5,), torch.float32, device).requires_grad_()
    for f in (F.hinge_embedding_loss, LF.hinge_embedding_loss):
        assert not f(x.detach(), t).requires_grad
        f(x, t).backward()
        assert t.grad is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        LF.hinge_embedding_loss(x.detach(), t).backward()


@pytest.mark.parametrize("device", DEVICES)
def test_hinge_ties_and_nan_match_torch_exactly(device):
    nan = float("nan")
    x = torch.tensor([0.5, 0.5, 0.5, nan, nan, nan, 0.2, 0.5, -3.0], device=device)
    t = torch.tensor([-1., 1., 0., 1., -1., 0., nan, 2., -1.], device=device)
    for margin in (0.5, -3.0, 0.0):
        for red in REDUCTIONS:
            res = []
            for f in (LF.hinge_embedding_loss, F.hinge_embedding_loss):
                xi = x.clone().requires_grad_()
                out = f(xi, t, margin=margin, reduction=red)
                res.append((out, torch.autograd.grad(out.sum(), xi)[0]))
            for a, b in zip(*res):
                torch.testing.assert_close(a, b, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_hinge_errors(device):
    for f in (F.hinge_embedding_loss, LF.hinge_embedding_loss):
        with pytest.raises(RuntimeError):
            f(torch.randn(3, device=device), torch.randn(4, device=device))
        with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
            f(torch.randn(3, device=device), torch.randn(3, device=device), reduction="bad")
    # Integer inputs: torch's mean raises; lossext always asks for a floating input.
    with pytest.raises(RuntimeError, match="floating"):
        LF.hinge_embedding_loss(torch.arange(3, device=device), torch.ones(3, device=device), reduction="sum")


# ---- both ----------------------------------------------------------------------------------------

CASES = {
    "margin_ranking_loss": lambda dev, dt=torch.float32: (
        [torch.randn(6, 5, device=dev, dtype=dt), torch.randn(6, 1, device=dev, dtype=dt),
         _signs((6, 5), dt, dev, True)], {"margin": 0.25}, (0, 1, 2)),
    "hinge_embedding_loss": lambda dev, dt=torch.float32: (
        [torch.randn(6, 5, device=dev, dtype=dt) * 2, _hinge_target((6, 5), dt, dev)], {"margin": 0.75}, (0,)),
}
NAMES = list(CASES)


def _op_args(name, args, kw, red, mask):
    return (*args, kw["margin"], red, mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_opcheck(name, device):
    args, kw, diff = CASES[name](device)
    k = len(diff)
    op, bwd = getattr(OPS, name).default, getattr(OPS, name + "_backward").default
    for red in (0, 1, 2):
        leaves = [a.clone().requires_grad_(i in diff) for i, a in enumerate(args)]
        for mask in ([True] * k, [False] * k, [i % 2 == 0 for i in range(k)]):
            opcheck(op, _op_args(name, leaves, kw, red, mask))
        shape = torch.broadcast_shapes(*[a.shape for a in args])
        go = torch.randn((), device=device) if red else torch.randn(shape, device=device)
        opcheck(bwd, (go, *_op_args(name, args, kw, red, [True] * k)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_compile_fullgraph(name, reduction, device):
    args, kw, diff = CASES[name](device)
    leaves = [a.clone().requires_grad_(i in diff) for i, a in enumerate(args)]
    f = getattr(LF, name)
    compiled = torch.compile(lambda *a: f(*a, reduction=reduction, **kw), fullgraph=True)
    a, b = compiled(*leaves), f(*leaves, reduction=reduction, **kw)
    torch.testing.assert_close(a, b)
    ins = [leaves[i] for i in diff]
    g = torch.randn(a.shape, device=device)
    for ga, gb in zip(torch.autograd.grad(a, ins, g), torch.autograd.grad(b, ins, g)):
        torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name, reduction):
    args, kw, diff = CASES[name]("cpu", torch.float64)
    leaves = [a.clone().requires_grad_(i in diff) for i, a in enumerate(args)]
    f = getattr(LF, name)
    assert torch.autograd.gradcheck(lambda *a: f(*a, reduction=reduction, **kw), leaves)


@pytest.mark.parametrize("name,module", [("margin_ranking_loss", "MarginRankingLoss"),
                                         ("hinge_embedding_loss", "HingeEmbeddingLoss")])
def test_module_is_drop_in(name, module):
    args, kw, diff = CASES[name]("cpu")
    for kwargs in [{}, dict(kw, reduction="sum"), {"reduction": "none"}]:
        ours, theirs = getattr(lossext.nn, module)(**kwargs), getattr(torch.nn, module)(**kwargs)
        assert isinstance(ours, getattr(torch.nn, module))
        assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
        leaves = [a.clone().requires_grad_(i in diff) for i, a in enumerate(args)]
        a, b = ours(*leaves), theirs(*leaves)
        torch.testing.assert_close(a, b)
        ins = [leaves[i] for i in diff]
        g = torch.randn(a.shape)
        for ga, gb in zip(torch.autograd.grad(a, ins, g), torch.autograd.grad(b, ins, g)):
            torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("name", NAMES)
def test_legacy_reduction_args(name):
    args, kw, _ = CASES[name]("cpu")
    f, ref = getattr(LF, name), getattr(F, name)
    for sa, rd in [(None, False), (False, None), (True, True), (False, True)]:
        with pytest.warns(UserWarning):
            a = f(*args, size_average=sa, reduce=rd, **kw)
        with pytest.warns(UserWarning):
            b = ref(*args, size_average=sa, reduce=rd, **kw)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_large_and_deterministic(device):
    # Many elements: the blocked sums stay accurate in float32 and give the same bits every run.
    n = 3_000_001
    x1, x2 = torch.randn(n, device=device), torch.randn(n, device=device)
    y = _signs((n,), torch.float32, device)
    _mr(x1, x2, y, "mean", 0.1)
    _he(x1, _hinge_target((n,), torch.float32, device), "mean", 1.0)
    assert torch.equal(LF.margin_ranking_loss(x1, x2, y), LF.margin_ranking_loss(x1, x2, y))
    threads = torch.get_num_threads()
    try:
        res = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            a = x1.clone().requires_grad_()
            loss = LF.hinge_embedding_loss(a, y, margin=0.3)
            res.append((loss, torch.autograd.grad(loss, a)[0]))
        for r in res[1:]:
            assert all(torch.equal(p, q) for p, q in zip(res[0], r))
    finally:
        torch.set_num_threads(threads)


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x1 = torch.randn(37, 53, dtype=torch.float64, generator=g); x2 = torch.randn(37, 1, dtype=torch.float64, generator=g)\n"
        "y = torch.randint(-1, 3, (37, 53), generator=g).double()\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):\n"
        "    for red in ('sum', 'none'):\n"
        "        for name, args, m in (('margin_ranking_loss', (x1, x2, y), 0.3), ('hinge_embedding_loss', (x1, y), 0.5)):\n"
        "            a_in = [t.to(dt).requires_grad_() for t in args]; b_in = [t.to(dt).double().requires_grad_() for t in args]\n"
        "            if name == 'hinge_embedding_loss':\n"
        "                a_in[1].requires_grad_(False); b_in[1].requires_grad_(False)\n"
        "            a = getattr(LF, name)(*a_in, m, reduction=red); b = getattr(F, name)(*b_in, m, reduction=red)\n"
        "            assert (a.double() - b).abs().max() <= 1e-2 * (1 + b.abs().max()), (name, dt, red)\n"
        "            d = [t for t in a_in if t.requires_grad]; db = [t for t in b_in if t.requires_grad]\n"
        "            for ga, gb in zip(torch.autograd.grad(a.sum(), d), torch.autograd.grad(b.sum(), db)):\n"
        "                assert (ga.double() - gb).abs().max() <= 1e-2 * (1 + gb.abs().max()), (name, dt, red, 'grad')\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
