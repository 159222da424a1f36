"""The focal losses: sigmoid_focal_loss (torchvision's formula as the reference) and focal_loss
(the softmax form: a float64 composite, and cross_entropy at gamma = 0)."""
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
    with pytest.raises(NotImplementedError):
        LF.sigmoid_focal_loss(x.long(), t)
    with pytest.raises(NotImplementedError):
        LF.sigmoid_focal_loss(x, t.argmax(1))  # class-index targets: not implemented yet
    with pytest.raises(NotImplementedError):
        LF.sigmoid_focal_loss(x, t, normalizer=torch.tensor(2.0))
    with pytest.raises(RuntimeError, match="not differentiable"):
        LF.sigmoid_focal_loss(x, t, weight=torch.ones(4, requires_grad=True))


def test_sigmoid_gradcheck_opcheck_compile():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    for gamma in (0.0, 0.5, 2.0):
        assert torch.autograd.gradcheck(lambda x, t: LF.sigmoid_focal_loss(x, t, 0.3, gamma, "sum"), (x, t))
        assert torch.autograd.gradcheck(lambda x, t: LF.sigmoid_focal_loss(x, t, -1, gamma, "none"), (x, t))
    for r in (0, 1, 2):
        opcheck(OPS.sigmoid_focal_loss, (x, t, None, 0.25, 2.0, r, [True, True]))
    f = torch.compile(lambda x, t: LF.sigmoid_focal_loss(x, t, 0.25, 2.0, "mean"), fullgraph=True)
    out = f(x, t)
    g = torch.autograd.grad(out, x)[0]
    xr = x.detach().clone().requires_grad_()
    assert_close(out, tv_sigmoid_focal_loss(xr, t.detach(), reduction="mean"), torch.float64)
    assert_close(g, torch.autograd.grad(tv_sigmoid_focal_loss(xr, t.detach(), reduction="mean"), xr)[0], torch.float64)
    assert torch.autograd.gradgradcheck(lambda a: LF.sigmoid_focal_loss(a, t.detach(), reduction="sum"),
                                        [x.detach().clone().requires_grad_()])


# ---- softmax form ----------------------------------------------------------------------------------

def ref_focal(x, t, alpha=None, gamma=2.0, weight=None, ignore_index=-100, reduction="mean"):
    """float64 composite: -w_t a_t (1 - p_t)^gamma log p_t, weighted mean over sum of w_t."""
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
    with pytest.raises(NotImplementedError):
        LF.focal_loss(x, t, gamma=2.0, label_smoothing=0.1)
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
        opcheck(OPS.focal_loss, (x, t, None, a, 1.0, 2.0, r, -100, [True]))
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
