"""The row-wise driver (csrc/include/lossext/rowwise.h) through cross_entropy and nll_loss: logit
magnitude, non-finite rows, long rows of a small batch (split in segments), K-dim weights, empty
strided inputs, and determinism across thread counts (issue 8 items 4, 5, 10, 11; issue 7)."""
import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF

from harness import DEVICES

inf = float("inf")


def grads(fn, x, *args, **kw):
    x = x.detach().clone().requires_grad_()
    loss = fn(x, *args, **kw)
    (g,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), g


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("offset", [0.0, 1e4, 1e6, 1e8])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_precision_at_large_logits(device, offset, smoothing):
    # The float32 gradient is exp(x - max) / z: no |x| * eps error from a rounded lse.
    base = torch.tensor([[100.0, 101.0, 102.0], [3.0, -2.0, 0.5]], device=device)
    x = base + offset
    t = torch.tensor([0, 2], device=device)
    for target in (t, torch.softmax(base * 0.3, 1)):
        # The reference: torch in float64 on the same (rounded) float32 logits.
        tt = target if target.dtype == torch.long else target.double()
        exp_l, exp_g = grads(F.cross_entropy, x.double(), tt, label_smoothing=smoothing)
        l, g = grads(LF.cross_entropy, x, target, label_smoothing=smoothing)
        torch.testing.assert_close(g.double(), exp_g, rtol=0, atol=2e-6)
        torch.testing.assert_close(g.sum(1).double(), torch.zeros(2, dtype=torch.float64, device=device),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(l.double(), exp_l, rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_huge_float64_logits_with_smoothing(device):
    # Near the top of float64, smoothing's sum_c (lse - x_c) must not be (W lse) - (sum x) = inf - inf.
    x = torch.tensor([[4e307, 3.9e307, 4e307]], dtype=torch.float64, device=device)
    t = torch.tensor([0], device=device)
    loss = LF.cross_entropy(x, t, label_smoothing=1.0)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(x, t, label_smoothing=1.0))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("C", [3, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_all_neg_inf_row_is_nan(device, C, dtype):
    # torch: NaN loss and NaN gradient for a row of -inf logits (rows and spatial layouts).
    x = torch.full((2, C), -inf, device=device, dtype=dtype)
    x[1] = torch.randn(C, device=device)
    t = torch.tensor([0, 1], device=device)
    l, g = grads(LF.cross_entropy, x, t, reduction="none")
    rl, rg = grads(F.cross_entropy, x, t, reduction="none")
    tol = dict(rtol=3e-2, atol=2e-3) if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(l, rl, equal_nan=True, **tol)
    torch.testing.assert_close(g, rg, equal_nan=True, **tol)
    xs = x.detach().unsqueeze(-1).expand(2, C, 4).contiguous()
    ts = t.unsqueeze(-1).expand(2, 4).contiguous()
    torch.testing.assert_close(LF.cross_entropy(xs, ts, reduction="none"), F.cross_entropy(xs, ts, reduction="none"),
                               equal_nan=True, **tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("smoothing", [0.0, 1.0])
def test_neg_inf_logit_with_probabilities(device, smoothing):
    # torch: inf, not NaN (no 0 * inf where the target term vanishes).
    x = torch.tensor([[0.0, -inf, 1.0]], device=device)
    y = torch.tensor([[0.2, 0.3, 0.5]], device=device)
    torch.testing.assert_close(LF.cross_entropy(x, y, label_smoothing=smoothing),
                               F.cross_entropy(x, y, label_smoothing=smoothing))
    l, g = grads(LF.cross_entropy, x, y)
    rl, rg = grads(F.cross_entropy, x, y)
    torch.testing.assert_close(g, rg)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("prob", [False, True])
def test_long_rows_small_batch(device, prob):
    # Few rows of many classes: the CPU splits each row into segments (merged in a fixed order).
    torch.manual_seed(0)
    x = torch.randn(3, 300_000, device=device) * 4
    t = torch.softmax(torch.randn_like(x), 1) if prob else torch.tensor([5, 299_999, 123], device=device)
    w = None if prob else torch.rand(300_000, device=device)
    for red in ("none", "mean", "sum"):
        l, g = grads(LF.cross_entropy, x, t, weight=w, reduction=red, label_smoothing=0.1)
        rl, rg = grads(F.cross_entropy, x.double(), t.double() if prob else t,
                       weight=None if w is None else w.double(), reduction=red, label_smoothing=0.1)
        torch.testing.assert_close(l.double(), rl, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g.double(), rg, rtol=1e-4, atol=1e-9)
    l, g = grads(LF.nll_loss, x, torch.tensor([5, 299_999, 123], device=device))
    rl, rg = grads(F.nll_loss, x, torch.tensor([5, 299_999, 123], device=device))
    torch.testing.assert_close(l, rl)
    torch.testing.assert_close(g, rg)


def test_deterministic_across_thread_counts():
    torch.manual_seed(1)
    cases = [(torch.randn(3, 200_000), torch.tensor([1, 2, 3])),
             (torch.randn(4000, 37), torch.randint(0, 37, (4000,))),
             (torch.randn(4, 21, 64, 65), torch.randint(0, 21, (4, 64, 65)))]
    old = torch.get_num_threads()
    try:
        for x, t in cases:
            out = []
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                out.append(grads(LF.cross_entropy, x, t, label_smoothing=0.2))
            for l, g in out[1:]:
                assert torch.equal(l, out[0][0]) and torch.equal(g, out[0][1])
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_kdim_weight_of_c_elements(device, fn):
    # torch's K-dim path takes any weight of C elements, e.g. (C, 1); 1-D/2-D inputs reject it.
    x = torch.randn(2, 3, 4, device=device)
    t = torch.randint(0, 3, (2, 4), device=device)
    w = torch.rand(3, 1, device=device)
    l, g = grads(getattr(LF, fn), x, t, weight=w)
    rl, rg = grads(getattr(F, fn), x, t, weight=w)
    torch.testing.assert_close(l, rl)
    torch.testing.assert_close(g, rg)
    with pytest.raises(RuntimeError):
        getattr(F, fn)(x[:, :, 0], t[:, 0], weight=w)
    with pytest.raises(RuntimeError, match=fn):
        getattr(LF, fn)(x[:, :, 0], t[:, 0], weight=w)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_strided_inputs(device):
    x = torch.randn(0, 1, device=device).expand(0, 5)
    t = torch.zeros(0, dtype=torch.long, device=device)
    for red in ("none", "mean", "sum"):
        torch.testing.assert_close(LF.cross_entropy(x, t, reduction=red), F.cross_entropy(x, t, reduction=red),
                                   equal_nan=True)
        torch.testing.assert_close(LF.nll_loss(x, t, reduction=red), F.nll_loss(x, t, reduction=red), equal_nan=True)
    xk = torch.randn(2, 1, 0, 3, device=device).expand(2, 4, 0, 3).requires_grad_()
    tk = torch.zeros(2, 0, 3, dtype=torch.long, device=device)
    torch.testing.assert_close(LF.cross_entropy(xk, tk), F.cross_entropy(xk, tk), equal_nan=True)
    (g,) = torch.autograd.grad(LF.cross_entropy(xk, tk), xk)
    assert g.shape == xk.shape


@pytest.mark.parametrize("device", DEVICES)
def test_kdim_weight_with_smoothing_and_probabilities(device):
    # Found by tests/test_fuzz.py: torch takes a K-dim input's (C, 1) weight only with class-index
    # targets, and with label_smoothing only for 'sum'/'none' (its smoothed mean gathers the weight).
    x = torch.randn(2, 3, 4, device=device)
    t = torch.randint(0, 3, (2, 4), device=device)
    w = torch.rand(3, 1, device=device)
    for red in ("sum", "none"):
        l, g = grads(LF.cross_entropy, x, t, weight=w, label_smoothing=0.2, reduction=red)
        rl, rg = grads(F.cross_entropy, x, t, weight=w, label_smoothing=0.2, reduction=red)
        torch.testing.assert_close(l, rl)
        torch.testing.assert_close(g, rg)
    for f in (F, LF):
        with pytest.raises(RuntimeError):
            f.cross_entropy(x, t, weight=w, label_smoothing=0.2)
        with pytest.raises(RuntimeError, match="weight"):
            f.cross_entropy(x, torch.softmax(x, 1), weight=w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_probability_target_gradient_of_a_non_finite_row_is_nan(device, dtype):
    # Found by tests/test_fuzz.py: dL/dy_c = -(x_c - lse) was inf in float32 at a +inf logit.
    x = torch.tensor([[1.4, -0.5, 0.1, 0.3, inf], [0.2, 0.1, -0.3, 0.0, 1.0]], device=device, dtype=dtype)
    y = torch.softmax(torch.randn(2, 5, device=device, dtype=dtype), 1)
    res = []
    for f in (F, LF):
        xs, ys = x.clone().requires_grad_(), y.clone().requires_grad_()
        loss = f.cross_entropy(xs, ys, label_smoothing=0.5, reduction="none")
        res.append((loss, *torch.autograd.grad(loss.sum(), (xs, ys))))
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, equal_nan=True)
    assert res[1][2][0].isnan().all()


def test_ignored_rows_with_non_finite_logits_have_a_zero_gradient():
    # torch gives NaN there (README: where torch itself fails); the ignored row adds nothing.
    x = torch.tensor([[inf, 0.0, 1.0], [0.5, 0.2, -1.0]], requires_grad=True)
    t = torch.tensor([1, 2])
    (g,) = torch.autograd.grad(LF.cross_entropy(x, t, ignore_index=1), x)
    assert torch.equal(g[0], torch.zeros(3))
    (r,) = torch.autograd.grad(F.cross_entropy(x, t, ignore_index=1), x)
    torch.testing.assert_close(g[1], r[1])
