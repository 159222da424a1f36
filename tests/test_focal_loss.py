"""The focal losses: sigmoid_focal_loss (torchvision's formula as the reference) and focal_loss
(the softmax form: a float64 composite, and cross_entropy at gamma = 0)."""
import math

import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
import lossext.nn as LN
from harness import DEVICES, FLOAT_DTYPES, REDUCTIONS, assert_close, check_loss, opcheck

OPS = torch.ops.lossext
GAMMAS = [0.0, 0.5, 2.0, 5.0]


# torchvision.ops.sigmoid_focal_loss's formula, verbatim (torchvision is not a dependency): one copy,
# shared with the bench.
from lossext._bench_focal import tv_sigmoid_focal_loss  # noqa: E402


# ---- sigmoid form ----------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(0, 4), (7,), (9, 13), (2, 3, 5)])
def test_sigmoid_matches_torchvision(shape, reduction, dtype, device):
    for gamma, alpha, soft in [(2.0, 0.25, False), (0.0, -1.0, True), (0.5, 0.6, False), (5.0, 0.25, True)]:
        x = torch.randn(shape, dtype=dtype, device=device) * 3
        t = torch.rand(shape, device=device) if soft else (torch.rand(shape, device=device) < 0.3).float()
        t = t.to(dtype)
        check_loss(lambda x, t: LF.sigmoid_focal_loss(x, t, alpha, gamma, reduction),
                   lambda x, t: tv_sigmoid_focal_loss(x, t, alpha, gamma, reduction), [x, t], diff=(0, 1))


@pytest.mark.parametrize("gamma", [0.25, 0.5, 1.0, 2.0])
def test_sigmoid_gradient_finite_where_p_t_is_one(gamma):
    # sigmoid(+-40) rounds to exactly 1 / 0 in float32: p_t = 1, (1 - p_t)^(gamma - 1) is singular.
    x = torch.tensor([40.0, -40.0, 3.0, -2.0], requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    g, = torch.autograd.grad(LF.sigmoid_focal_loss(x, t, 0.25, gamma, "sum"), x)
    assert torch.isfinite(g).all()
    xr = x.detach().double().requires_grad_()
    gr, = torch.autograd.grad(tv_sigmoid_focal_loss(xr, t.double(), 0.25, gamma, "sum"), xr)
    ok = torch.isfinite(gr)
    assert_close(g[ok], gr[ok].float(), torch.float32)
    assert g[0].abs() < 1e-12 and g[1].abs() < 1e-12  # the limit: 0


def test_sigmoid_gamma0_has_no_focal_term_at_infinite_logits():
    # Found by the fuzz test: at gamma = 0 the factor q^0 is the constant 1 and its derivative term
    # is exactly 0; it was gamma * ce * ... = 0 * inf = NaN at an infinite logit. torchvision's
    # autograd (pow's backward returns zeros for a zero exponent) gives the finite gradient.
    x = torch.tensor([math.inf, -math.inf, 3.0, -math.inf], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    for alpha in (1.0, 0.25, -1.0):
        g, = torch.autograd.grad(LF.sigmoid_focal_loss(x, t, alpha=alpha, gamma=0.0, reduction="sum"), x)
        xr = x.detach().clone().requires_grad_()
        gr, = torch.autograd.grad(tv_sigmoid_focal_loss(xr, t, alpha=alpha, gamma=0.0, reduction="sum"), xr)
        assert torch.equal(g, gr), (alpha, g, gr)


def test_sigmoid_weight_and_module():
    x, t = torch.randn(6, 5, dtype=torch.float64), (torch.rand(6, 5) < 0.2).double()
    w = torch.rand(5, dtype=torch.float64) + 0.5
    check_loss(lambda x: LF.sigmoid_focal_loss(x, t, reduction="mean", weight=w),
               lambda x: (tv_sigmoid_focal_loss(x, t) * w).mean(), [x])
    m = LN.SigmoidFocalLoss(alpha=0.5, gamma=1.5, reduction="sum", weight=w)
    assert "weight" in dict(m.named_buffers()) and "gamma=1.5" in repr(m)
    assert_close(m(x, t), (tv_sigmoid_focal_loss(x, t, 0.5, 1.5) * w).sum(), torch.float64)


def test_sigmoid_torchvision_examples():
    # torchvision's documented use: RetinaNet's head, sum over the one-hot targets / #foreground.
    x = torch.randn(10, 4, dtype=torch.float64)
    t = torch.zeros(10, 4, dtype=torch.float64)
    t[torch.arange(5), torch.randint(0, 4, (5,))] = 1
    assert_close(LF.sigmoid_focal_loss(x, t, reduction="sum") / 5, tv_sigmoid_focal_loss(x, t, reduction="sum") / 5,
                 torch.float64)
    assert LF.sigmoid_focal_loss(x, t).shape == x.shape  # reduction 'none' by default


def test_sigmoid_errors():
    x, t = torch.randn(3, 4), torch.rand(3, 4)
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        LF.sigmoid_focal_loss(x, t, reduction="avg")
    with pytest.raises(ValueError, match="gamma"):
        LF.sigmoid_focal_loss(x, t, gamma=-1.0)
    with pytest.raises(ValueError, match="must be the same as input size"):
        LF.sigmoid_focal_loss(x, t[:, :3])
    with pytest.raises(NotImplementedError):  # an integer input, as torch's kernels
        LF.sigmoid_focal_loss(x.long(), t)
    with pytest.raises(RuntimeError, match="not differentiable"):
        LF.sigmoid_focal_loss(x, t, weight=torch.ones(4, requires_grad=True))
    with pytest.raises(RuntimeError, match="not differentiable.*normalizer"):
        LF.sigmoid_focal_loss(x, t, normalizer=torch.tensor(2.0, requires_grad=True))
    with pytest.raises(RuntimeError, match="one element"):
        LF.sigmoid_focal_loss(x, t, normalizer=torch.ones(2))
    with pytest.raises(TypeError):
        LF.sigmoid_focal_loss(x, t, normalizer=2.0)


def test_sigmoid_gradcheck_opcheck_compile():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradcheck(lambda x, t: LF.sigmoid_focal_loss(x, t, 0.3, gamma, "sum"), (x, t))
        assert torch.autograd.gradcheck(lambda x, t: LF.sigmoid_focal_loss(x, t, -1, gamma, "none"), (x, t))
    for r in (0, 1, 2):
        opcheck(OPS.sigmoid_focal_loss, (x, t, None, None, 0.25, 2.0, r, [True, True]))
        opcheck(OPS.sigmoid_focal_loss, (x, t, None, torch.tensor(3.0, dtype=torch.float64), 0.25, 2.0, r,
                                         [True, True]))
    f = torch.compile(lambda x, t: LF.sigmoid_focal_loss(x, t, 0.25, 2.0, "mean"), fullgraph=True)
    out = f(x, t)
    g = torch.autograd.grad(out, x)[0]
    xr = x.detach().clone().requires_grad_()
    assert_close(out, tv_sigmoid_focal_loss(xr, t.detach(), reduction="mean"), torch.float64)
    assert_close(g, torch.autograd.grad(tv_sigmoid_focal_loss(xr, t.detach(), reduction="mean"), xr)[0], torch.float64)
    assert torch.autograd.gradgradcheck(lambda a: LF.sigmoid_focal_loss(a, t.detach(), reduction="sum"),
                                        [x.detach().clone().requires_grad_()])


# ---- sigmoid form: normalizer, class-index targets ---------------------------------------------------

def ref_sigmoid_index(x, t, alpha=0.25, gamma=2.0, reduction="none", weight=None, normalizer=None, ignore_index=-100):
    """float64 composite: torchvision's formula on the one-hot built here (index C: background),
    ignored rows zeroed, mean over the elements of the rows kept, then / normalizer."""
    cd = x.dim() - 1 if t.shape == x.shape[:-1] else 1
    C = x.shape[cd]
    keep = t != ignore_index
    onehot = F.one_hot(torch.where(keep, t, C), C + 1)[..., :C].movedim(-1, cd).to(x.dtype)
    k = keep.unsqueeze(cd).to(x.dtype)
    l = tv_sigmoid_focal_loss(x, onehot, alpha, gamma) * k
    if weight is not None:
        shape = [1] * x.dim()
        shape[cd] = C
        l = l * weight.view(shape)
    if reduction == "mean":
        l = l.sum() / (k.sum() * C)
    elif reduction == "sum":
        l = l.sum()
    return l if normalizer is None else l / normalizer


def _index_targets(tshape, C, device, ignore=True):
    t = torch.randint(0, C + 1, tshape)  # C: background
    if t.numel() > 0:
        t.view(-1)[::3] = C
        if ignore and t.numel() > 1:
            t.view(-1)[1::4] = -100
    return t.to(device)


# (input shape, target shape): class dim last (target = input.shape[:-1]) or 1 ((N, C, d1..dk)).
INDEX_SHAPES = [((9, 13), (9,)), ((7,), ()), ((2, 3, 5), (2, 3)), ((2, 4, 3, 5), (2, 3, 5)), ((3, 6, 7), (3, 7)),
                ((0, 4), (0,))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", INDEX_SHAPES)
def test_sigmoid_index_matches_composite(shapes, reduction, dtype, device):
    xs, ts = shapes
    C = xs[-1] if len(ts) == len(xs) - 1 and tuple(xs[:-1]) == ts else xs[1]
    for gamma, alpha, weighted, normed in [(2.0, 0.25, False, False), (0.0, -1.0, True, True),
                                           (0.5, 0.6, True, False), (5.0, 0.25, False, True)]:
        x = torch.randn(xs, dtype=dtype, device=device) * 3
        t = _index_targets(ts, C, device)
        w = torch.rand(C, dtype=dtype, device=device) + 0.5 if weighted else None
        n = torch.tensor(7, device=device) if normed else None  # an integer count, on the input's device
        check_loss(lambda x: LF.sigmoid_focal_loss(x, t, alpha, gamma, reduction, weight=w, normalizer=n),
                   lambda x: ref_sigmoid_index(x, t.cpu(), alpha, gamma, reduction,
                                               None if w is None else w.double().cpu(), None if n is None else n.cpu()),
                   [x], check_dtype=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sigmoid_index_is_the_one_hot_float_form(reduction):
    # The drop-in: class indices give torchvision's loss of the one-hot a detection head would build.
    x = torch.randn(50, 6, dtype=torch.float64, requires_grad=True)
    cls = torch.randint(0, 7, (50,))  # 6: background
    onehot = F.one_hot(cls, 7)[:, :6].double()
    ours = LF.sigmoid_focal_loss(x, cls, reduction=reduction)
    ref = tv_sigmoid_focal_loss(x, onehot, reduction=reduction)
    assert_close(ours, ref, torch.float64)
    g = torch.randn(ours.shape, dtype=torch.float64)
    assert_close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0], torch.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sigmoid_float_normalizer(reduction):
    x, t = torch.randn(8, 5, dtype=torch.float32), (torch.rand(8, 5) < 0.2).float()
    for n in (torch.tensor(3.0), torch.tensor([4]), torch.tensor(2.5, dtype=torch.float64)):
        check_loss(lambda x, t: LF.sigmoid_focal_loss(x, t, 0.25, 2.0, reduction, normalizer=n),
                   lambda x, t: tv_sigmoid_focal_loss(x, t, 0.25, 2.0, reduction) / n.double().reshape(()),
                   [x, t], diff=(0, 1), check_dtype=False)  # (the loss keeps the inputs' dtype)
        assert LF.sigmoid_focal_loss(x, t, reduction=reduction, normalizer=n).dtype == torch.float32


def test_sigmoid_index_all_ignored_and_ignore_index():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.full((4,), -100)
    m = LF.sigmoid_focal_loss(x, t, reduction="mean")
    assert torch.isnan(m)  # 0 / 0, as torch's mean of nothing
    # ... with a zero gradient, as cross_entropy's: an image whose anchors are all ignored must not
    # put NaN into the weights (found by the fuzz test: it was NaN).
    assert (torch.autograd.grad(m, x)[0] == 0).all()
    s = LF.sigmoid_focal_loss(x, t, reduction="sum")
    assert s.item() == 0 and (torch.autograd.grad(s, x)[0] == 0).all()
    assert (LF.sigmoid_focal_loss(x, t) == 0).all()
    t2 = torch.tensor([0, 2, 3, 1])  # ignore_index = 2: that row is dropped from the loss and the mean
    check_loss(lambda x: LF.sigmoid_focal_loss(x, t2, reduction="mean", ignore_index=2),
               lambda x: ref_sigmoid_index(x, t2, reduction="mean", ignore_index=2), [x])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_sigmoid_index_keeps_the_input_dtype(dtype):
    # Found by the fuzz test: the kernel's internal class table (float32) took part in the type
    # promotion, so float16/bfloat16 inputs got a float32 loss (the fake said float16: opcheck
    # would fail), unlike the float-target form and torchvision's composite.
    x = torch.randn(5, 4, dtype=dtype, requires_grad=True)
    t = torch.tensor([0, 4, 2, -100, 1])
    for r in REDUCTIONS:
        for kw in ({}, {"weight": torch.rand(4, dtype=dtype)}, {"normalizer": torch.tensor(3)}):
            out = LF.sigmoid_focal_loss(x, t, reduction=r, **kw)
            assert out.dtype == dtype, (r, kw, out.dtype)
            assert torch.autograd.grad(out.sum(), x)[0].dtype == dtype
    opcheck(OPS.sigmoid_focal_loss_index, (x, t, None, None, 0.25, 2.0, 1, -100, [True]))


def test_sigmoid_index_errors():
    x = torch.randn(4, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, 4, 1, 2]))  # 3 (= C) is background, 4 is out of range
    with pytest.raises(IndexError, match="out of bounds"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, -5, 1, 2]), reduction="sum")
    with pytest.raises(RuntimeError, match="does not match input"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, 1, 2]))
    with pytest.raises(RuntimeError, match="Long"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, 1, 2, 0], dtype=torch.int32))
    with pytest.raises(RuntimeError, match="weight of shape"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, 1, 2, 0]), weight=torch.ones(4))
    with pytest.raises(ValueError, match="gamma"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, 1, 2, 0]), gamma=-0.5)
    with pytest.raises(ValueError, match="gamma"):  # the op itself (C++ callers)
        OPS.sigmoid_focal_loss_index(x, torch.tensor([0, 1, 2, 0]), None, None, 0.25, -1.0, 0, -100, [False])
    with pytest.raises(RuntimeError, match="not differentiable.*normalizer"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, 1, 2, 0]), normalizer=torch.tensor(2.0, requires_grad=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: the device cannot raise without a host sync")
def test_sigmoid_index_out_of_range_is_nan_on_cuda():
    x = torch.randn(4, 3, device="cuda", requires_grad=True)
    t = torch.tensor([0, 5, 3, -100], device="cuda")  # 5: out of range (3 is background, -100 ignored)
    loss = LF.sigmoid_focal_loss(x, t)
    g, = torch.autograd.grad(loss.sum(), x)
    assert torch.isnan(loss[1]).all() and torch.isnan(g[1]).all()
    ok = [0, 2, 3]
    ref = ref_sigmoid_index(x.detach().double().cpu()[ok], t.cpu()[ok])
    assert_close(loss.detach()[ok].cpu(), ref.float(), torch.float32)
    m = LF.sigmoid_focal_loss(x, t, reduction="mean")  # NaN, with no host sync
    assert torch.isnan(m)


def test_sigmoid_index_gradcheck_opcheck_compile_module():
    x = torch.randn(5, 4, 3, dtype=torch.float64, requires_grad=True)  # class dim 1, target (5, 3)
    t = _index_targets((5, 3), 4, "cpu")
    w = torch.rand(4, dtype=torch.float64) + 0.5
    n = torch.tensor(3.0, dtype=torch.float64)
    for gamma in (0.0, 0.5, 2.0):
        for r in REDUCTIONS:
            assert torch.autograd.gradcheck(
                lambda x: LF.sigmoid_focal_loss(x, t, 0.3, gamma, r, weight=w, normalizer=n), (x,))
    for r in (0, 1, 2):
        opcheck(OPS.sigmoid_focal_loss_index, (x, t, w, n, 0.25, 2.0, r, -100, [True]))
        opcheck(OPS.sigmoid_focal_loss_index, (x, t, None, None, -1.0, 0.5, r, -100, [True]))
    f = torch.compile(lambda x, n: LF.sigmoid_focal_loss(x, t, 0.25, 2.0, "mean", weight=w, normalizer=n),
                      fullgraph=True)
    out = f(x, n)
    xr = x.detach().clone().requires_grad_()
    ref = ref_sigmoid_index(xr, t, 0.25, 2.0, "mean", w, n)
    assert_close(out, ref, torch.float64)
    assert_close(torch.autograd.grad(out, x)[0], torch.autograd.grad(ref, xr)[0], torch.float64)
    for r in REDUCTIONS:  # second derivatives through the composite
        assert torch.autograd.gradgradcheck(
            lambda a: LF.sigmoid_focal_loss(a, t, 0.25, 2.0, r, weight=w, normalizer=n), [xr])
    m = LN.SigmoidFocalLoss(alpha=0.5, gamma=1.5, reduction="mean", weight=w, ignore_index=-1)
    assert {"weight", "normalizer"} <= set(m._buffers) and "ignore_index=-1" in repr(m)  # (a None buffer: not in named_buffers)
    t1 = t.masked_fill(t == -100, -1)  # (-100 is out of range once ignore_index is -1)
    assert_close(m(x, t1, n), ref_sigmoid_index(x.detach(), t1, 0.5, 1.5, "mean", w, n, -1), torch.float64)
    with pytest.raises(IndexError):
        m(x, t, n)
    m2 = LN.SigmoidFocalLoss(reduction="sum", normalizer=n)
    assert "normalizer" in dict(m2.named_buffers())
    assert_close(m2(x, t), ref_sigmoid_index(x.detach(), t, reduction="sum", normalizer=n), torch.float64)


# ---- softmax form ----------------------------------------------------------------------------------

def ref_focal(x, t, alpha=None, gamma=2.0, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """float64 composite: -w_t a_t (1 - p_t)^gamma log p_t, weighted mean over sum of w_t; smoothed
    eps: (1 - eps) times that plus eps / C sum_c -w_c a_c (1 - p_c)^gamma log p_c (cross_entropy's rule)."""
    cdim = 0 if x.dim() == 1 else 1
    lp = torch.log_softmax(x, cdim)
    if x.dim() == 1:
        lp, t = lp.unsqueeze(0), t.unsqueeze(0)
    valid = t != ignore_index
    tc = torch.where(valid, t, torch.zeros_like(t)).long()
    lpt = lp.gather(1, tc.unsqueeze(1)).squeeze(1)
    w = torch.ones(lp.shape[1], dtype=x.dtype) if weight is None else weight
    a = torch.ones_like(w) if alpha is None else (alpha if isinstance(alpha, torch.Tensor) else torch.full_like(w, alpha))
    wt, at = w[tc] * valid, a[tc]
    loss = -wt * at * (1 - lpt.exp()) ** gamma * lpt
    if label_smoothing > 0:
        u = (w * a).view(-1, *([1] * (lp.dim() - 2)))
        every = (-u * (1 - lp.exp()) ** gamma * lp).sum(1) * valid
        loss = (1 - label_smoothing) * loss + label_smoothing / lp.shape[1] * every
    if x.dim() == 1:
        loss, wt = loss.squeeze(0), wt.squeeze(0)
    if reduction == "mean":
        return loss.sum() / wt.sum()
    return loss.sum() if reduction == "sum" else loss


def _targets(x, C, ignore=True):
    shape = () if x.dim() == 1 else (x.shape[0], *x.shape[2:])
    t = torch.randint(0, C, shape)
    if ignore and t.numel() > 1:
        t.view(-1)[::4] = -100
    return t


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6,), (7, 11), (3, 5, 4), (2, 4, 3, 5), (0, 3)])
def test_softmax_matches_composite(shape, reduction, dtype, device):
    C = shape[0] if len(shape) == 1 else shape[1]
    for gamma, alpha, weighted in [(2.0, None, False), (0.5, 0.25, True), (0.0, "t", True), (5.0, "t", False)]:
        x = torch.randn(shape, dtype=dtype, device=device) * 3
        t = _targets(x, C).to(device)
        w = torch.rand(C, dtype=dtype, device=device) + 0.3 if weighted else None
        a = torch.rand(C, dtype=dtype, device=device) + 0.1 if alpha == "t" else alpha
        check_loss(lambda x: LF.focal_loss(x, t, a, gamma, w, reduction=reduction),
                   lambda x: ref_focal(x, t.cpu(), a if not isinstance(a, torch.Tensor) else a.double().cpu(),
                                       gamma, None if w is None else w.double().cpu(), reduction=reduction),
                   [x], check_dtype=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_gamma0_is_cross_entropy(reduction):
    x = torch.randn(8, 6, 3, dtype=torch.float64)
    t = _targets(x, 6)
    w = torch.rand(6, dtype=torch.float64) + 0.5
    check_loss(lambda x: LF.focal_loss(x, t, gamma=0.0, weight=w, reduction=reduction),
               lambda x: F.cross_entropy(x, t, w, reduction=reduction), [x])
    check_loss(lambda x: LF.focal_loss(x, t, gamma=0.0, reduction=reduction, label_smoothing=0.2),
               lambda x: F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.2), [x])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6,), (7, 11), (3, 5, 4), (2, 4, 3, 5), (0, 3), (5, 37)])
def test_softmax_label_smoothing_matches_composite(shape, reduction, dtype, device):
    # Rows (7, 11), (5, 37: vector tails) and spatial (3, 5, 4) layouts, every alpha form, weights.
    C = shape[0] if len(shape) == 1 else shape[1]
    cases = [(2.0, None, False, 0.1), (0.5, 0.25, True, 0.3), (0.0, "t", True, 0.2), (5.0, "t", False, 1.0),
             (1.5, None, True, 0.05)]
    for gamma, alpha, weighted, eps in cases:
        x = torch.randn(shape, dtype=dtype, device=device) * 3
        t = _targets(x, C).to(device)
        w = torch.rand(C, dtype=dtype, device=device) + 0.3 if weighted else None
        a = torch.rand(C, dtype=dtype, device=device) + 0.1 if alpha == "t" else alpha
        check_loss(lambda x: LF.focal_loss(x, t, a, gamma, w, reduction=reduction, label_smoothing=eps),
                   lambda x: ref_focal(x, t.cpu(), a if not isinstance(a, torch.Tensor) else a.double().cpu(),
                                       gamma, None if w is None else w.double().cpu(), reduction=reduction,
                                       label_smoothing=eps),
                   [x], check_dtype=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_smoothing_at_gamma0_is_cross_entropys_through_the_focal_kernel(reduction):
    # alpha = 1.0 (a float) keeps focal_loss off the cross_entropy shortcut: the focal kernel's second
    # sweep must give cross_entropy's smoothed value and gradient (rows and spatial layouts, weighted).
    for shape in [(8, 6), (4, 6, 5)]:
        x = torch.randn(shape, dtype=torch.float64)
        t = _targets(x, 6)
        w = torch.rand(6, dtype=torch.float64) + 0.5
        check_loss(lambda x: LF.focal_loss(x, t, 1.0, 0.0, w, reduction=reduction, label_smoothing=0.3),
                   lambda x: F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=0.3), [x])


def test_softmax_smoothing_long_rows_split_into_segments():
    # Rows of >= 131072 classes and few of them: the CPU cuts each row into segments (both sweeps).
    x = torch.randn(2, 140001, dtype=torch.float64) * 2
    t = torch.tensor([5, 140000])
    for r in REDUCTIONS:
        check_loss(lambda x: LF.focal_loss(x, t, 0.5, 2.0, reduction=r, label_smoothing=0.1),
                   lambda x: ref_focal(x, t, 0.5, 2.0, reduction=r, label_smoothing=0.1), [x])


def test_softmax_smoothing_gradcheck_gradgradcheck_opcheck_compile():
    x = torch.randn(5, 4, 3, dtype=torch.float64, requires_grad=True)
    t = _targets(x, 4)
    a = torch.rand(4, dtype=torch.float64) + 0.2
    w = torch.rand(4, dtype=torch.float64) + 0.2
    for gamma in (0.5, 2.0):
        for r in ("none", "mean", "sum"):
            f = lambda x: LF.focal_loss(x, t, a, gamma, w, reduction=r, label_smoothing=0.2)  # noqa: E731
            assert torch.autograd.gradcheck(f, (x,))
            assert torch.autograd.gradgradcheck(f, (x,))
    for r in (0, 1, 2):
        opcheck(OPS.focal_loss, (x, t, w, a, 1.0, 2.0, r, -100, 0.2, [True]))
    f = torch.compile(lambda x: LF.focal_loss(x, t, 0.5, 2.0, label_smoothing=0.1), fullgraph=True)
    out = f(x)
    xr = x.detach().clone().requires_grad_()
    ref = ref_focal(xr, t, 0.5, 2.0, label_smoothing=0.1)
    assert_close(out, ref, torch.float64)
    assert_close(torch.autograd.grad(out, x)[0], torch.autograd.grad(ref, xr)[0], torch.float64)
    m = LN.FocalLoss(alpha=a, gamma=2.0, label_smoothing=0.2)
    assert "label_smoothing=0.2" in repr(m)
    assert_close(m(x, t), ref_focal(x.detach(), t, a, 2.0, label_smoothing=0.2), torch.float64)


def test_softmax_stable_at_certain_rows():
    # p_t = 1 (and 1 - p_t = 0) for gamma < 1: finite loss and gradient, as the limit says.
    x = torch.tensor([[60.0, 0.0, -5.0], [0.0, 1.0, 2.0], [-1e4, 0.0, 3.0]], dtype=torch.float32, requires_grad=True)
    t = torch.tensor([0, 2, 0])
    for gamma in (0.0, 0.25, 0.5, 2.0):
        loss = LF.focal_loss(x, t, gamma=gamma, reduction="sum")
        g, = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
        xr = x.detach().double().requires_grad_()
        assert_close(loss, ref_focal(xr, t, gamma=gamma, reduction="sum"), torch.float32)


def test_softmax_errors():
    x, t = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError):
        LF.focal_loss(x, t, gamma=-0.5)
    with pytest.raises(ValueError):
        LF.focal_loss(x, t, reduction="avg")
    with pytest.raises(IndexError):
        LF.focal_loss(x, torch.tensor([0, 1, 5, 3]))
    with pytest.raises(ValueError, match="batch_size"):  # as cross_entropy
        LF.focal_loss(x, t[:3])
    with pytest.raises(RuntimeError):
        LF.focal_loss(x, t, alpha=torch.ones(4))
    with pytest.raises(RuntimeError, match="label_smoothing"):  # as cross_entropy
        LF.focal_loss(x, t, gamma=2.0, label_smoothing=1.5)
    with pytest.raises(NotImplementedError):
        LF.focal_loss(x, torch.rand(4, 5))
    with pytest.raises(RuntimeError, match="not differentiable"):
        LF.focal_loss(x, t, weight=torch.ones(5, requires_grad=True))


def test_softmax_gradcheck_opcheck_compile_module():
    x = torch.randn(5, 4, 3, dtype=torch.float64, requires_grad=True)
    t = _targets(x, 4)
    a = torch.rand(4, dtype=torch.float64) + 0.2
    for gamma in (0.0, 0.5, 2.0):
        for r in ("none", "mean", "sum"):
            assert torch.autograd.gradcheck(lambda x: LF.focal_loss(x, t, a, gamma, reduction=r), (x,))
    for r in (0, 1, 2):
        opcheck(OPS.focal_loss, (x, t, None, a, 1.0, 2.0, r, -100, 0.0, [True]))
    f = torch.compile(lambda x: LF.focal_loss(x, t, 0.5, 2.0), fullgraph=True)
    out = f(x)
    xr = x.detach().clone().requires_grad_()
    assert_close(out, ref_focal(xr, t, 0.5, 2.0), torch.float64)
    assert_close(torch.autograd.grad(out, x)[0], torch.autograd.grad(ref_focal(xr, t, 0.5, 2.0), xr)[0], torch.float64)
    m = LN.FocalLoss(alpha=a, gamma=1.5, reduction="sum")
    assert "alpha" in dict(m.named_buffers()) and "gamma=1.5" in repr(m)
    assert_close(m(x, t), ref_focal(x.detach(), t, a, 1.5, reduction="sum"), torch.float64)
    assert torch.autograd.gradgradcheck(lambda a: LF.focal_loss(a, t), [x.detach().clone().requires_grad_()])


def test_training_loop_decreases():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 5)
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    x, t = torch.randn(64, 8), torch.randint(0, 5, (64,))
    tt = F.one_hot(t, 5).float()
    first = None
    for _ in range(30):
        opt.zero_grad()
        out = lin(x)
        loss = LF.focal_loss(out, t) + LF.sigmoid_focal_loss(out, tt, reduction="mean")
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first
