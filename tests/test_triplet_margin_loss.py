"""triplet_margin_loss against torch.

Values and gradients over shapes (empty batch, zero features, unbatched (D), 0-d, 3-D batches, long
rows, broadcast batch and feature dims, strided/expanded operands), every reduction, the four
dtypes, norms p in {2, 1, 3, 0.5, 1.5, 0, -1, inf, -inf}, eps and swap; all three operands are
differentiable. Ties (swap's min, the hinge) and zero differences as torch; errors, opcheck,
torch.compile, gradcheck, the module, every CPU ISA, determinism.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext
INF = float("inf")
SHAPES = [(7,), (4, 5), (0, 5), (3, 0), (33, 129), (2, 3, 6), (2, 4099), ()]
NORMS = [2, 1, 3, 0.5, 1.5, -1, INF, -INF]


def _triplet(shape, dtype, device):
    a = torch.randn(shape, dtype=dtype, device=device)
    p = (a.float() + 0.8 * torch.randn(shape, device=device)).to(dtype)
    n = (a.float() + 1.2 * torch.randn(shape, device=device)).to(dtype)
    return a, p, n


def _tm(a, pos, n, reduction, dtype=None, **kw):
    return check_loss(lambda x, y, z: LF.triplet_margin_loss(x, y, z, reduction=reduction, **kw),
                      lambda x, y, z: F.triplet_margin_loss(x, y, z, reduction=reduction, **kw),
                      [a, pos, n], diff=(0, 1, 2), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_torch(shape, reduction, dtype, device):
    for kw in [{}, {"swap": True}, {"margin": 0.3, "eps": 0.0}, {"p": 1}, {"p": INF, "swap": True}]:
        if kw.get("p") == INF and 0 in shape[-1:]:  # torch's norm has no identity for inf: both raise
            for f in (F.triplet_margin_loss, LF.triplet_margin_loss):
                with pytest.raises(RuntimeError, match="cannot compute the inf norm"):
                    f(*_triplet(shape, dtype, device), reduction=reduction, **kw)
            continue
        _tm(*_triplet(shape, dtype, device), reduction, **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("p", NORMS, ids=str)
def test_norms(p, swap, device):
    for dtype in (torch.float64, torch.float32):
        for red in REDUCTIONS:
            _tm(*_triplet((9, 37), dtype, device), red, p=p, swap=swap, margin=0.7)


@pytest.mark.parametrize("device", DEVICES)
def test_norm_zero(device):
    # p = 0 counts the non-zero differences; the loss does not depend on the inputs differentiably
    # (torch returns no gradient, lossext zeros).
    a, p, n = _triplet((6, 5), torch.float64, device)
    p[0] = a[0] - 1e-6
    for red in REDUCTIONS:
        for swap in (False, True):
            torch.testing.assert_close(LF.triplet_margin_loss(a, p, n, p=0, swap=swap, reduction=red),
                                       F.triplet_margin_loss(a, p, n, p=0, swap=swap, reduction=red))
    x = a.clone().requires_grad_()
    g, = torch.autograd.grad(LF.triplet_margin_loss(x, p, n, p=0), x)
    assert torch.equal(g, torch.zeros_like(a))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_broadcasting(reduction, device):
    for sa, sp, sn in [((4, 5), (1, 5), (4, 5)), ((1, 5), (4, 5), (1, 5)), ((4, 5), (4, 1), (4, 5)),
                       ((4, 1), (4, 1), (4, 5)), ((2, 1, 5), (1, 3, 5), (2, 3, 1))]:
        for kw in ({}, {"swap": True, "p": 1}, {"p": INF, "swap": True}, {"p": 3}):
            a, p, n = (torch.randn(s, device=device) for s in (sa, sp, sn))
            out = _tm(a, p, n, reduction, **kw)
            if reduction == "none":
                assert out.shape == F.triplet_margin_loss(a, p, n, reduction="none", **kw).shape


@pytest.mark.parametrize("device", DEVICES)
def test_strided_expanded(device):
    base = torch.randn(40, 30, device=device)
    a = base.t()[1:, ::3]                                    # (29, 14)
    p = torch.randn(14, device=device).expand(29, 14)        # stride 0 along the batch
    n = torch.randn(14, 29, device=device).t()               # transposed
    for red in REDUCTIONS:
        _tm(a, p, n, red, swap=True)
    x = torch.randn(3, 4, 8, device=device).transpose(0, 1)  # batch dims that do not merge
    _tm(x, torch.randn(4, 3, 8, device=device), torch.randn(4, 3, 8, device=device), "none")


@pytest.mark.parametrize("device", DEVICES)
def test_ties_and_zero_differences_match_torch(device):
    # Zero differences (eps=0): the norm's subgradient 0; swap ties split the gradient in half;
    # margin + d_ap - d_neg == 0 passes the gradient (clamp_min's >=).
    z = torch.zeros(2, 3, dtype=torch.float64, device=device)
    o = torch.ones(2, 3, dtype=torch.float64, device=device)
    cases = [(z, z, z, {"eps": 0.0, "swap": True}), (o, z, 2 * o, {"eps": 0.0, "swap": True}),
             (torch.tensor([[1., 2, 2], [0, 0, 0]], dtype=torch.float64, device=device), z, o, {"eps": 0.0, "margin": 5})]
    for a, p, n, kw in cases:
        for norm in (2, 1, 3, 0.5, INF):
            res = []
            for f in (LF.triplet_margin_loss, F.triplet_margin_loss):
                ins = [t.clone().requires_grad_() for t in (a, p, n)]
                out = f(*ins, p=norm, reduction="sum", **kw)
                res.append((out, *torch.autograd.grad(out, ins)))
            for x, y in zip(*res):
                torch.testing.assert_close(x, y, equal_nan=True)
    # The hinge's tie: d_ap = 0, d_an = 1 (p = 1), margin = 1.
    a = torch.zeros(1, 2, dtype=torch.float64, device=device)
    n = torch.tensor([[1., 0]], dtype=torch.float64, device=device)
    res = []
    for f in (LF.triplet_margin_loss, F.triplet_margin_loss):
        ins = [t.clone().requires_grad_() for t in (a, a, n)]
        out = f(*ins, p=1, eps=0.0, margin=1.0)
        res.append((out, *torch.autograd.grad(out, ins)))
    for x, y in zip(*res):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("device", DEVICES)
def test_dtypes(device):
    for da, dp, dn in [(torch.float16, torch.float32, torch.float64), (torch.int64, torch.int64, torch.int64),
                       (torch.bfloat16, torch.bfloat16, torch.float32)]:
        ins = [torch.randint(-3, 4, (5, 4), device=device).to(d).requires_grad_(d.is_floating_point)
               for d in (da, dp, dn)]
        out, ref = LF.triplet_margin_loss(*ins), F.triplet_margin_loss(*ins)
        assert out.dtype == ref.dtype
        torch.testing.assert_close(out, ref, atol=1e-2, rtol=1e-2)
        diff = [t for t in ins if t.requires_grad]
        if diff:
            for g, gr in zip(torch.autograd.grad(out, diff), torch.autograd.grad(ref, diff)):
                assert g.dtype == gr.dtype
                torch.testing.assert_close(g, gr, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    t = lambda *s: torch.randn(s, device=device)  # noqa: E731
    for args in [(t(3, 4), t(4), t(3, 4)), (t(3, 4), t(3, 4), t(2, 3, 4)), (t(3, 4), t(2, 4), t(3, 4)),
                 (t(3, 4), t(3, 5), t(3, 4))]:
        with pytest.raises(RuntimeError) as theirs:
            F.triplet_margin_loss(*args)
        with pytest.raises(RuntimeError) as ours:
            LF.triplet_margin_loss(*args)
        if "same number of dimensions" in str(theirs.value):
            assert str(ours.value).splitlines()[0] == str(theirs.value).splitlines()[0]
    for f in (F.triplet_margin_loss, LF.triplet_margin_loss):
        for m in (0.0, -1.0):
            with pytest.raises(ValueError, match="margin must be greater than 0"):
                f(t(3, 2), t(3, 2), t(3, 2), margin=m)
        with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
            f(t(3, 2), t(3, 2), t(3, 2), reduction="bad")
    with pytest.raises(ValueError):
        lossext.nn.TripletMarginLoss(margin=-1)


# ---- op-level ------------------------------------------------------------------------------------

def _case(dev, dt=torch.float32):
    return list(_triplet((6, 5), dt, dev)), {"margin": 0.8, "p": 2.0, "eps": 1e-6, "swap": True}


def _op_args(args, kw, red, mask):
    return (*args, kw["margin"], kw["p"], kw["eps"], kw["swap"], red, mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [2.0, 1.0, INF, 3.0])
def test_opcheck(p, device):
    args, kw = _case(device)
    kw["p"] = p
    op, bwd = OPS.triplet_margin_loss.default, OPS.triplet_margin_loss_backward.default
    for red in (0, 1, 2):
        leaves = [a.clone().requires_grad_() for a in args]
        for mask in ([True] * 3, [False] * 3, [True, False, True]):
            opcheck(op, _op_args(leaves, kw, red, mask))
        saved = op(*_op_args(args, kw, red, [False] * 3))[4]
        go = torch.randn((), device=device) if red else torch.randn(6, device=device)
        opcheck(bwd, (go, *_op_args(args, kw, red, [True] * 3)[:-1], saved, [True] * 3))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compile_fullgraph(reduction, device):
    args, kw = _case(device)
    leaves = [a.clone().requires_grad_() for a in args]
    f = LF.triplet_margin_loss
    compiled = torch.compile(lambda *a: f(*a, reduction=reduction, **kw), fullgraph=True)
    a, b = compiled(*leaves), f(*leaves, reduction=reduction, **kw)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    for ga, gb in zip(torch.autograd.grad(a, leaves, g), torch.autograd.grad(b, leaves, g)):
        torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [2.0, 1.5, 3.0])
def test_gradcheck(p, reduction):
    args, kw = _case("cpu", torch.float64)
    kw["p"] = p
    leaves = [a.clone().requires_grad_() for a in args]
    assert torch.autograd.gradcheck(lambda *x: LF.triplet_margin_loss(*x, reduction=reduction, **kw), leaves)


def test_module_is_drop_in():
    args, kw = _case("cpu")
    for kwargs in [{}, dict(kw, reduction="sum"), {"reduction": "none", "p": 1.0}]:
        ours, theirs = lossext.nn.TripletMarginLoss(**kwargs), torch.nn.TripletMarginLoss(**kwargs)
        assert isinstance(ours, torch.nn.TripletMarginLoss)
        assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
        leaves = [a.clone().requires_grad_() for a in args]
        a, b = ours(*leaves), theirs(*leaves)
        torch.testing.assert_close(a, b)
        g = torch.randn(a.shape)
        for ga, gb in zip(torch.autograd.grad(a, leaves, g), torch.autograd.grad(b, leaves, g)):
            torch.testing.assert_close(ga, gb)


def test_legacy_reduction_args():
    args, kw = _case("cpu")
    for sa, rd in [(None, False), (False, None), (True, True), (False, True)]:
        with pytest.warns(UserWarning):
            a = LF.triplet_margin_loss(*args, size_average=sa, reduce=rd, **kw)
        with pytest.warns(UserWarning):
            b = F.triplet_margin_loss(*args, size_average=sa, reduce=rd, **kw)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_large_and_deterministic(device):
    a, p, n = _triplet((20000, 96), torch.float32, device)
    _tm(a, p, n, "mean", swap=True)
    threads = torch.get_num_threads()
    try:
        res = []
        for nt in (1, 2, 3):
            torch.set_num_threads(nt)
            ins = [t.clone().requires_grad_() for t in (a, p, n)]
            loss = LF.triplet_margin_loss(*ins, swap=True)
            res.append((loss, *torch.autograd.grad(loss, ins)))
        for r in res[1:]:
            assert all(torch.equal(x, y) for x, y in zip(res[0], r))
    finally:
        torch.set_num_threads(threads)


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "g = torch.Generator().manual_seed(0)\n"
        "a, p, n = (torch.randn(37, 53, dtype=torch.float64, generator=g) for _ in range(3))\n"
        "for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):\n"
        "    for red, kw in (('sum', {}), ('none', {'swap': True, 'p': 1.0}), ('sum', {'p': float('inf')}), ('none', {'p': 3.0})):\n"
        "        a_in = [t.to(dt).requires_grad_() for t in (a, p, n)]; b_in = [t.to(dt).double().requires_grad_() for t in (a, p, n)]\n"
        "        x = LF.triplet_margin_loss(*a_in, reduction=red, **kw); y = F.triplet_margin_loss(*b_in, reduction=red, **kw)\n"
        "        assert (x.double() - y).abs().max() <= 2e-2 * (1 + y.abs().max()), (dt, red, kw)\n"
        "        for ga, gb in zip(torch.autograd.grad(x.sum(), a_in), torch.autograd.grad(y.sum(), b_in)):\n"
        "            assert (ga.double() - gb).abs().max() <= 2e-2 * (1 + gb.abs().max()), (dt, red, kw, 'grad')\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
