"""Non-finite and extreme values of the pointwise losses, as torch (issue 8, item 5)."""
import math

import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
from harness import DEVICES

INF = math.inf


def _both(fn, *tensors):
    """[(loss, grads)] from torch and lossext for the same leaves."""
    out = []
    for M in (F, LF):
        leaves = [t.clone().requires_grad_() for t in tensors]
        loss = fn(M, *leaves)
        out.append((loss.detach(), torch.autograd.grad(loss, leaves, torch.ones_like(loss))))
    return out


def _same(a, b):
    torch.testing.assert_close(a, b, equal_nan=True, rtol=1e-6, atol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("pos_weight", [False, True])
def test_bce_with_logits_target_gradient_at_infinite_logits(device, reduction, pos_weight):
    x = torch.tensor([-INF, INF, 0.0, -3.0], device=device, dtype=torch.float64)
    t = torch.tensor([0.5, 0.5, 0.5, 1.0], device=device, dtype=torch.float64)
    kw = {"pos_weight": torch.tensor([1.0, 2.0, 0.5, 3.0], device=device, dtype=torch.float64)} if pos_weight else {}
    (lr, gr), (lg, gg) = _both(lambda M, a, b: M.binary_cross_entropy_with_logits(a, b, reduction=reduction, **kw), x, t)
    _same(lg, lr)
    for a, b in zip(gg, gr):
        _same(a, b)  # d/dtarget at -inf: inf (torch's -input), not NaN


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_gaussian_nll_loss_subnormal_var_without_eps(device, reduction):
    # 1 / var overflows float32 for var = 1e-39; torch's (x - t)^2 / var and (x - t) / var do not.
    x = torch.tensor([0.1, 1.0, 2.0], device=device)
    t = torch.zeros(3, device=device)
    v = torch.tensor([1e-39, 1e-39, 1.0], device=device)
    (lr, gr), (lg, gg) = _both(lambda M, a, b, c: M.gaussian_nll_loss(a, b, c, eps=0.0, reduction=reduction), x, t, v)
    _same(lg, lr)
    if reduction == "none":
        assert math.isfinite(lg[0].item()) and lg[0].item() == pytest.approx(5.0e36, rel=1e-5)
    # d/dx = (x - t) / var = 1e38 fits float32: torch's float32 backward (via 1 / var) gives inf,
    # lossext the float64 value rounded; d/dvar is -inf - ... in float64 too: NaN/inf as torch.
    (_, g64), = _both(lambda M, a, b, c: F.gaussian_nll_loss(a, b, c, eps=0.0, reduction=reduction),
                      x.double(), t.double(), v.double())[:1]
    _same(gg[0], g64[0].float())
    _same(gg[1], g64[1].float())
    _same(gg[2], gr[2])
