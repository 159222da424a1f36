"""linear_cross_entropy's logging outputs (return_lse, return_z_loss) against a float64 composite of
the logits, and their contract: the loss itself unchanged, the extras not differentiable, opcheck,
compile fullgraph, the module's keyword extras."""
import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
import lossext.nn as LN
from harness import DEVICES, REDUCTIONS, assert_close, opcheck
from test_linear_cross_entropy import _data

OPS = torch.ops.lossext


def _stats_ref(x, w, t, b=None, weight=None, reduction="mean", ignore_index=-100, z_loss=0.0, softcap=None):
    """float64: per-token lse of the (softcapped) logits (0 where ignored), and z * w_t * lse^2
    reduced like the cross-entropy (mean over the kept tokens' summed class weight)."""
    x, w = x.double(), w.double()
    logits = F.linear(x, w, b.double() if b is not None else None)
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    lse = logits.logsumexp(-1)
    if t.dtype == torch.long:
        keep = t != ignore_index
        wt = (weight.double()[t.clamp(min=0)] if weight is not None else torch.ones_like(lse)) * keep
        lse = lse * keep
    else:
        wt = torch.ones_like(lse)
    zl = z_loss * wt * lse ** 2
    if reduction == "sum":
        zl = zl.sum()
    elif reduction == "mean":
        zl = zl.sum() / wt.sum()
    return lse, zl


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("opts", [{}, dict(weight=True, label_smoothing=0.1), dict(prob=True), dict(softcap=2.0),
                                  dict(lead=(2, 5)), dict(ignore_index=3, weight=True)])
def test_lse_and_z_loss(device, reduction, dtype, opts):
    opts = dict(opts)
    prob, lead = opts.pop("prob", False), opts.pop("lead", (9,))
    x, w, t, b = _data(lead, 6, 7, dtype=dtype, device=device, ignore=None if prob else opts.get("ignore_index", -100),
                        prob=prob)
    x = x * 3  # large logits: the z-loss matters
    if opts.pop("weight", False):
        opts["weight"] = (torch.rand(7, device=device) + 0.1).to(dtype)
    x.requires_grad_()
    kw = dict(opts, reduction=reduction, z_loss=0.05, chunk_size=4, linear_bias=b)
    loss, zl, lse = LF.linear_cross_entropy(x, w, t, return_z_loss=True, return_lse=True, **kw)
    plain = LF.linear_cross_entropy(x, w, t, **kw)
    assert torch.equal(loss, plain)  # asking for the extras changes nothing of the loss
    assert loss.requires_grad and not lse.requires_grad and not zl.requires_grad
    math = torch.float64 if dtype == torch.float64 else torch.float32
    assert lse.dtype == math and zl.dtype == math
    ref = {k: v for k, v in opts.items() if k != "label_smoothing"}
    lse_r, zl_r = _stats_ref(x, w, t, b, reduction=reduction, z_loss=0.05, **ref)
    assert_close(lse, lse_r, dtype, "lse")  # bf16: float32 statistics of bf16-rounded logits
    assert_close(zl, zl_r, dtype, "z_loss")
    # Each flag alone returns its own pair.
    l2, lse2 = LF.linear_cross_entropy(x, w, t, return_lse=True, **kw)
    l3, zl3 = LF.linear_cross_entropy(x, w, t, return_z_loss=True, **kw)
    assert torch.equal(lse2, lse) and torch.equal(zl3, zl) and torch.equal(l2, loss) and torch.equal(l3, loss)


@pytest.mark.parametrize("device", DEVICES)
def test_all_ignored_and_no_z(device):
    x, w, t, b = _data((5,), 4, 6, device=device)
    t.fill_(-100)
    loss, zl, lse = LF.linear_cross_entropy(x, w, t, return_z_loss=True, return_lse=True, z_loss=0.1)
    assert loss.isnan() and zl.isnan()  # torch's mean over no kept token: 0/0
    assert torch.equal(lse, torch.zeros(5, device=device))
    t = torch.randint(0, 6, (5,), device=device)
    _, zl = LF.linear_cross_entropy(x, w, t, return_z_loss=True, reduction="sum")
    assert zl.item() == 0.0


def test_under_autocast():
    x, w, t, b = _data((6,), 8, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, lse = LF.linear_cross_entropy(x, w, t, return_lse=True)
    assert loss.dtype == torch.float32 and lse.dtype == torch.float32
    lse_r, _ = _stats_ref(x.bfloat16(), w.bfloat16(), t)
    assert_close(lse, lse_r, torch.bfloat16)


def test_opcheck_and_errors():
    x, w, t, b = _data((6,), 4, 5)
    saved = OPS.linear_cross_entropy.default(x, w, t, None, None, 1, -100, 0.0, 0.0, 0.0, 0, [False] * 3)[4]
    wt = torch.rand(5) + 0.5
    for red in (0, 1, 2):
        opcheck(OPS.linear_cross_entropy_stats.default, (saved, t, wt, red, -100, 0.1))
        opcheck(OPS.linear_cross_entropy_stats.default, (saved, t, None, red, 2, 0.0))
    with pytest.raises(IndexError):
        OPS.linear_cross_entropy_stats(saved, torch.tensor([0, 1, 9, 2, 3, 4]), wt, 1, -100, 0.1)
    with pytest.raises(RuntimeError, match="saved statistics"):
        OPS.linear_cross_entropy_stats(saved[:, :1], t, None, 1, -100, 0.1)
    with pytest.raises(RuntimeError, match="one per token"):
        OPS.linear_cross_entropy_stats(saved, t[:4], None, 1, -100, 0.1)


def test_compile_fullgraph():
    x, w, t, b = _data((6,), 4, 5)
    x.requires_grad_()
    f = torch.compile(lambda x_: LF.linear_cross_entropy(x_, w, t, z_loss=0.1, return_z_loss=True, return_lse=True),
                      fullgraph=True)
    loss, zl, lse = f(x)
    loss.backward()
    xr = x.detach().requires_grad_()
    ref = LF.linear_cross_entropy(xr, w, t, z_loss=0.1, return_z_loss=True, return_lse=True)
    ref[0].backward()
    for a, e in zip((loss, zl, lse, x.grad), (*ref, xr.grad)):
        assert_close(a, e, torch.float32)


def test_module_extras():
    torch.manual_seed(0)
    m = LN.LinearCrossEntropyLoss(8, 10, z_loss=1e-3, softcap=30.0, return_z_loss=True)
    assert "z_loss=0.001" in repr(m) and "softcap=30.0" in repr(m) and "return_lse" not in repr(m)
    x, t = torch.randn(16, 8), torch.randint(0, 10, (16,))
    loss, zl = m(x, t)
    ref, zr = LF.linear_cross_entropy(x, m.linear.weight, t, z_loss=1e-3, softcap=30.0, return_z_loss=True)
    assert torch.equal(loss, ref) and torch.equal(zl, zr)
    theirs = torch.nn.LinearCrossEntropyLoss(8, 10)
    theirs.load_state_dict(m.state_dict())  # the extras are not state
