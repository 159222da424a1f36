"""triplet_margin_with_distance_loss against torch.

Without a distance function (or with torch's pairwise distance, as nn.TripletMarginWithDistanceLoss
defaults to) the native triplet_margin_loss runs; with a user callable, its distances feed
lossext's margin op and autograd flows through the callable. Values and gradients, swap and its
ties, reductions, dtypes, broadcasting distances, errors, opcheck of the margin op, torch.compile
(fullgraph with a traceable callable), gradcheck, the module.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, check_loss, opcheck

OPS = torch.ops.lossext


def _cos_dist(x, y):
    return 1.0 - F.cosine_similarity(x, y)


def _l1_dist(x, y):
    return (x - y).abs().sum(-1)


DISTANCES = {"none": None, "pairwise": torch.pairwise_distance, "module": torch.nn.PairwiseDistance(p=1.5, eps=1e-4),
             "cosine": _cos_dist, "l1": _l1_dist}


def _triplet(shape, dtype, device):
    a = torch.randn(shape, dtype=dtype, device=device)
    p = (a.float() + 0.8 * torch.randn(shape, device=device)).to(dtype)
    n = (a.float() + 1.2 * torch.randn(shape, device=device)).to(dtype)
    return a, p, n


def _tmd(a, pos, n, reduction, dtype=None, **kw):
    return check_loss(lambda x, y, z: LF.triplet_margin_with_distance_loss(x, y, z, reduction=reduction, **kw),
                      lambda x, y, z: F.triplet_margin_with_distance_loss(x, y, z, reduction=reduction, **kw),
                      [a, pos, n], diff=(0, 1, 2), dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dist", list(DISTANCES))
def test_matches_torch(dist, reduction, dtype, device):
    # Seeded: in the half types torch's rounding of margin + d_ap - d_neg can put a random row on the
    # other side of the hinge than lossext's float arithmetic (a gradient of 0 against 1).
    torch.manual_seed(0)
    for shape in [(6, 5), (7,), (0, 3), (2, 3, 4)]:
        if dist == "cosine" and len(shape) != 2:
            continue
        for kw in [{}, {"swap": True}, {"margin": 0.3, "swap": True}]:
            args = _triplet(shape, dtype, device)
            if dist in ("cosine", "l1") and dtype in (torch.float16, torch.bfloat16):
                # The callable is torch's own half-type math (its rounding moves rows across the
                # hinge against a float64 reference): compare with torch in the same dtype.
                ins = [[t.clone().requires_grad_() for t in args] for _ in range(2)]
                outs = [f(*i, distance_function=DISTANCES[dist], reduction=reduction, **kw)
                        for f, i in zip((LF.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss), ins)]
                torch.testing.assert_close(outs[0], outs[1], atol=4e-2, rtol=2e-2, equal_nan=True)
                g = torch.randn(outs[0].shape, device=device, dtype=dtype)
                for ga, gb in zip(torch.autograd.grad(outs[0], ins[0], g), torch.autograd.grad(outs[1], ins[1], g)):
                    torch.testing.assert_close(ga, gb, atol=4e-2, rtol=2e-2)
                continue
            _tmd(*args, reduction, distance_function=DISTANCES[dist], **kw)


@pytest.mark.parametrize("device", DEVICES)
def test_swap_ties_and_hinge_tie(device):
    # A callable whose d(a, n) == d(p, n): the min's gradient splits in half, as torch.minimum's.
    a = torch.zeros(3, 2, dtype=torch.float64, device=device)
    p = torch.zeros(3, 2, dtype=torch.float64, device=device)
    n = torch.tensor([[1., 0], [0, 2], [3, 4]], dtype=torch.float64, device=device)
    for margin in (1.0, 2.0, 5.0):  # 1.0: margin + d_ap - d_neg == 0 on the first row
        res = []
        for f in (LF.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss):
            ins = [t.clone().requires_grad_() for t in (a, p, n)]
            out = f(*ins, distance_function=_l1_dist, margin=margin, swap=True, reduction="sum")
            res.append((out, *torch.autograd.grad(out, ins)))
        for x, y in zip(*res):
            torch.testing.assert_close(x, y)


@pytest.mark.parametrize("device", DEVICES)
def test_callable_broadcast_and_dtype(device):
    # A callable may return distances that broadcast (keepdim) or come in another dtype.
    a, p, n = _triplet((5, 4), torch.float32, device)
    keep = torch.nn.PairwiseDistance(keepdim=True)
    for red in REDUCTIONS:
        _tmd(a, p, n, red, distance_function=keep, swap=True)
    f64 = lambda x, y: _l1_dist(x, y).double()  # noqa: E731
    out = LF.triplet_margin_with_distance_loss(a, p, n, distance_function=f64)
    assert out.dtype == F.triplet_margin_with_distance_loss(a, p, n, distance_function=f64).dtype


@pytest.mark.parametrize("device", DEVICES)
def test_errors_match_torch(device):
    t = lambda *s: torch.randn(s, device=device)  # noqa: E731
    for f in (F.triplet_margin_with_distance_loss, LF.triplet_margin_with_distance_loss):
        with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
            f(t(3, 2), t(3, 2), t(3, 2), reduction="bad")
        with pytest.raises(ValueError, match="margin must be greater than 0"):
            f(t(3, 2), t(3, 2), t(3, 2), margin=0.0)
        with pytest.raises(RuntimeError, match="same number of dimensions"):
            f(t(3, 2), t(2), t(3, 2))
    with pytest.raises(ValueError, match="expected margin to be greater than 0"):
        lossext.nn.TripletMarginWithDistanceLoss(margin=-1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    op, bwd = OPS.triplet_margin_with_distance_loss.default, OPS.triplet_margin_with_distance_loss_backward.default
    d = [torch.rand(6, device=device) + 0.5 for _ in range(3)]
    for red in (0, 1, 2):
        for swap in (False, True):
            leaves = [x.clone().requires_grad_() for x in d]
            if not swap:
                leaves[2] = None
            for mask in ([True] * 3, [False] * 3, [True, False, True]):
                opcheck(op, (*leaves, 0.5, red, mask))
            go = torch.randn((), device=device) if red else torch.randn(6, device=device)
            opcheck(bwd, (go, *[x.detach() if x is not None else None for x in leaves], 0.5, red, [True] * 3))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dist", ["none", "l1"])
def test_compile_fullgraph(dist, device):
    a, p, n = (x.requires_grad_() for x in _triplet((6, 5), torch.float32, device))
    f = lambda *x: LF.triplet_margin_with_distance_loss(*x, distance_function=DISTANCES[dist], swap=True)  # noqa: E731
    compiled = torch.compile(f, fullgraph=True)
    x, y = compiled(a, p, n), f(a, p, n)
    torch.testing.assert_close(x, y)
    for gx, gy in zip(torch.autograd.grad(x, (a, p, n)), torch.autograd.grad(y, (a, p, n))):
        torch.testing.assert_close(gx, gy)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    a, p, n = (x.requires_grad_() for x in _triplet((6, 5), torch.float64, "cpu"))
    for dist in (None, _l1_dist):
        assert torch.autograd.gradcheck(
            lambda *x: LF.triplet_margin_with_distance_loss(*x, distance_function=dist, swap=True, margin=2.0,
                                                            reduction=reduction), (a, p, n))


def test_module_is_drop_in():
    a, p, n = _triplet((6, 5), torch.float32, "cpu")
    for kwargs in [{}, {"swap": True, "reduction": "sum"}, {"distance_function": _l1_dist, "reduction": "none"}]:
        ours = lossext.nn.TripletMarginWithDistanceLoss(**kwargs)
        theirs = torch.nn.TripletMarginWithDistanceLoss(**kwargs)
        assert isinstance(ours, torch.nn.TripletMarginWithDistanceLoss)
        assert repr(ours) == repr(theirs) and ours.state_dict().keys() == theirs.state_dict().keys()
        ins = [t.clone().requires_grad_() for t in (a, p, n)]
        x, y = ours(*ins), theirs(*ins)
        torch.testing.assert_close(x, y)
        g = torch.randn(x.shape)
        for gx, gy in zip(torch.autograd.grad(x, ins, g), torch.autograd.grad(y, ins, g)):
            torch.testing.assert_close(gx, gy)
