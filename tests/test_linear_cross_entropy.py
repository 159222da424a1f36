"""lossext.functional.linear_cross_entropy against torch.nn.functional.linear_cross_entropy (the
reference path: linear + cross_entropy) on small random shapes, with chunk sizes that split the
tokens into several chunks (the fused loop's interesting case)."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
import lossext.nn as LN
from harness import DEVICES, REDUCTIONS, assert_close, check_loss, opcheck

OPS = torch.ops.lossext


def _ref(x, w, t, b=None, **kw):
    """torch's reference path; input with more than one leading dim flattened (torch accepts 1-2)."""
    if x.dim() > 2:
        lead = x.shape[:-1]
        prob = t.shape == (*lead, w.shape[0])
        t2 = t.reshape(-1, w.shape[0]) if prob else t.reshape(-1)
        out = F.linear_cross_entropy(x.reshape(-1, x.shape[-1]), w, t2, linear_bias=b, **kw)
        return out.reshape(lead) if kw.get("reduction") == "none" else out
    return F.linear_cross_entropy(x, w, t, linear_bias=b, **kw)


def _check(x, w, t, b=None, dtype=None, chunk_size=3, **kw):
    ours = lambda x_, w_, t_, b_, **k: LF.linear_cross_entropy(x_, w_, t_, linear_bias=b_, chunk_size=chunk_size, **k)
    ref = lambda x_, w_, t_, b_, **k: _ref(x_, w_, t_, b_, **k)
    return check_loss(ours, ref, [x, w, t, b], kwargs=kw, diff=(0, 1, 3) if b is not None else (0, 1), dtype=dtype)


def _data(lead, H, C, dtype=torch.float32, device="cpu", prob=False, ignore=None, out=()):
    x = torch.randn(*lead, H, dtype=dtype, device=device)
    w = torch.randn(C, *out, H, dtype=dtype, device=device) / H ** 0.5
    b = torch.randn(C, *out, dtype=dtype, device=device)
    if prob:
        t = torch.randn(*lead, C, *out, dtype=dtype, device=device).softmax(len(lead))
    else:
        t = torch.randint(0, C, (*lead, *out), device=device)
        if ignore is not None:
            t[torch.rand(t.shape, device=device) < 0.3] = ignore
    return x, w, t, b


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lead", [(7,), (), (2, 5), (1,)])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_class_targets(device, reduction, lead, bias, chunk):
    x, w, t, b = _data(lead, 8, 11, device=device, ignore=-100)
    _check(x, w, t, b if bias else None, chunk_size=chunk, reduction=reduction)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", [dict(weight=True), dict(label_smoothing=0.2), dict(weight=True, label_smoothing=0.1),
                                  dict(ignore_index=3), dict(weight=True, ignore_index=2)])
def test_options(device, reduction, opts):
    opts = dict(opts)
    x, w, t, b = _data((9,), 6, 5, device=device, ignore=opts.get("ignore_index"))
    if opts.pop("weight", False):
        opts["weight"] = torch.rand(5, device=device) + 0.1
    _check(x, w, t, b, reduction=reduction, **opts)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lead", [(7,), (), (2, 3)])
@pytest.mark.parametrize("opts", [{}, dict(label_smoothing=0.3), dict(weight=True)])
def test_probability_targets(device, reduction, lead, opts):
    opts = dict(opts)
    x, w, t, b = _data(lead, 5, 6, device=device, prob=True)
    if opts.pop("weight", False):
        opts["weight"] = torch.rand(6, device=device) + 0.1
    _check(x, w, t, b, reduction=reduction, **opts)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_k_dimensional(device, reduction):
    x, w, t, b = _data((5,), 4, 3, device=device, out=(2, 3), ignore=-100)
    _check(x, w, t, b, reduction=reduction)
    x, w, t, b = _data((4,), 4, 3, device=device, out=(2,), prob=True)
    _check(x, w, t, b, reduction=reduction)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dtypes(device, dtype, reduction):
    x, w, t, b = _data((13,), 16, 40, dtype=dtype, device=device, ignore=-100)
    _check(x, w, t, b, dtype=dtype, chunk_size=4, reduction=reduction, label_smoothing=0.1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_ignored_and_empty(device, reduction):
    x, w, t, b = _data((6,), 4, 5, device=device)
    t.fill_(-100)
    _check(x, w, t, b, reduction=reduction)
    x, w, t, b = _data((0,), 4, 5, device=device)
    _check(x, w, t, b, reduction=reduction)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("frozen", ["head", "body", "bias_only"])
def test_frozen_parts(device, frozen):
    x, w, t, b = _data((10,), 6, 7, device=device)
    x.requires_grad_(frozen != "body" and frozen != "bias_only")
    w.requires_grad_(frozen != "head" and frozen != "bias_only")
    b.requires_grad_(True)
    loss = LF.linear_cross_entropy(x, w, t, linear_bias=b, chunk_size=3)
    xr, wr, br = (v.detach().requires_grad_(v.requires_grad) for v in (x, w, b))
    ref = F.linear_cross_entropy(xr, wr, t, linear_bias=br)
    assert_close(loss, ref, torch.float32)
    loss.backward()
    ref.backward()
    for ours, theirs in ((x, xr), (w, wr), (b, br)):
        assert (ours.grad is None) == (theirs.grad is None)
        if ours.grad is not None:
            assert_close(ours.grad, theirs.grad, torch.float32)


def test_no_grad_computes_no_gradient():
    x, w, t, b = _data((8,), 4, 5)
    x.requires_grad_()
    with torch.no_grad():
        loss = LF.linear_cross_entropy(x, w, t, linear_bias=b)
    assert not loss.requires_grad
    assert_close(loss, F.linear_cross_entropy(x.detach(), w, t, linear_bias=b), torch.float32)
    out = OPS.linear_cross_entropy(x.detach(), w, t, b, None, 1, -100, 0.0, 0.0, 0.0, 0, [False, False, False])
    assert all(g.numel() == 0 for g in out[1:4])


def test_gradcheck():
    x, w, t, b = _data((5,), 3, 4, dtype=torch.float64, ignore=-100)
    for red in REDUCTIONS:
        for prob in (False, True):
            tt = torch.randn(5, 4, dtype=torch.float64).softmax(1) if prob else t
            f = lambda x_, w_, b_: LF.linear_cross_entropy(x_, w_, tt, linear_bias=b_, reduction=red, chunk_size=2,
                                                           label_smoothing=0.1)
            torch.autograd.gradcheck(f, (x.requires_grad_(), w.requires_grad_(), b.requires_grad_()))


def test_opcheck():
    x, w, t, b = _data((6,), 4, 5)
    wt = torch.rand(5) + 0.5
    for red in (0, 1, 2):
        for mask in ([True, True, True], [False, True, False]):
            opcheck(OPS.linear_cross_entropy.default, (x, w, t, b, wt, red, -100, 0.1, 1e-3, 5.0, 2, mask))
    opcheck(OPS.linear_cross_entropy.default, (x, w, t, None, None, 1, -100, 0.0, 0.0, 0.0, 0, [True, True, False]))


def test_compile_fullgraph():
    x, w, t, b = _data((6,), 4, 5)
    x.requires_grad_()
    w.requires_grad_()
    f = torch.compile(lambda x_, w_, b_: LF.linear_cross_entropy(x_, w_, t, linear_bias=b_, chunk_size=4),
                      fullgraph=True)
    loss = f(x, w, b)
    loss.backward()
    xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
    ref = F.linear_cross_entropy(xr, wr, t, linear_bias=b)
    ref.backward()
    assert_close(loss, ref, torch.float32)
    assert_close(x.grad, xr.grad, torch.float32)
    assert_close(w.grad, wr.grad, torch.float32)


def test_double_backward_is_torchs():
    x, w, t, b = _data((4,), 3, 5, dtype=torch.float64)
    for red in ("mean", "none"):
        grads = []
        for f in (LF.linear_cross_entropy, F.linear_cross_entropy):
            xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
            (g,) = torch.autograd.grad(f(xl, wl, t, reduction=red).sum(), xl, create_graph=True)
            (g ** 2).sum().backward()
            grads.append((xl.grad, wl.grad))
        torch.testing.assert_close(grads[0], grads[1])


def test_autocast_bf16():
    x, w, t, b = _data((12,), 16, 30)
    x.requires_grad_()
    w.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = LF.linear_cross_entropy(x, w, t, linear_bias=b, chunk_size=5)
        xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
        ref = F.linear_cross_entropy(xr, wr, t, linear_bias=b)
    assert loss.dtype == ref.dtype == torch.float32
    loss.backward()
    ref.backward()
    assert x.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    assert_close(loss, ref, torch.bfloat16)
    assert_close(x.grad, xr.grad, torch.bfloat16)
    assert_close(w.grad, wr.grad, torch.bfloat16)


def test_errors():
    x, w, t, b = _data((4,), 3, 5)
    with pytest.raises(RuntimeError, match="in_features"):
        LF.linear_cross_entropy(x, torch.randn(5, 2), t)
    with pytest.raises(IndexError):
        LF.linear_cross_entropy(x, w, torch.tensor([0, 1, 7, 2]))
    with pytest.raises(ValueError):
        LF.linear_cross_entropy(x, w, t, reduction="avg")
    with pytest.raises(ValueError):
        LF.linear_cross_entropy(x, w, t[:3])
    with pytest.raises(RuntimeError, match="linear_bias"):
        LF.linear_cross_entropy(x, w, t, linear_bias=torch.randn(4))
    with pytest.raises(RuntimeError, match="ignore_index"):
        LF.linear_cross_entropy(x, w, torch.rand(4, 5), ignore_index=1)
    with pytest.raises(RuntimeError, match="dtype"):
        LF.linear_cross_entropy(x, w.double(), t)
    with pytest.raises(RuntimeError, match="not differentiable"):
        LF.linear_cross_entropy(x, w, t, weight=torch.rand(5, requires_grad=True))


def test_options_warns_once():
    import lossext._functional_linear_ce as m
    m._options_warned = False
    x, w, t, b = _data((4,), 3, 5)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        LF.linear_cross_entropy(x, w, t, options=torch.nn.LinearCrossEntropyOptions())
        LF.linear_cross_entropy(x, w, t, options=torch.nn.LinearCrossEntropyOptions())
    assert sum("options" in str(r.message) for r in rec) == 1


def test_module_state_dict_and_training():
    torch.manual_seed(0)
    ours = LN.LinearCrossEntropyLoss(8, 10, bias=True)
    theirs = torch.nn.LinearCrossEntropyLoss(8, 10, bias=True)
    theirs.load_state_dict(ours.state_dict())
    assert isinstance(ours, torch.nn.LinearCrossEntropyLoss)
    x, t = torch.randn(32, 8), torch.randint(0, 10, (32,))
    assert_close(ours(x, t), theirs(x, t), torch.float32)
    opt = torch.optim.SGD(ours.parameters(), lr=0.5)
    first = None
    for _ in range(20):
        opt.zero_grad()
        loss = ours(x, t)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first


def _z_ref(x, w, t, b=None, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0, z_loss=0.0,
           softcap=None):
    """float64 composite: cross_entropy per token + z * w_t * lse^2, reduced like the cross-entropy."""
    logits = F.linear(x, w, b)
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    ce = F.cross_entropy(logits, t, weight=weight, reduction="none", ignore_index=ignore_index,
                         label_smoothing=label_smoothing)
    lse = logits.logsumexp(-1)
    if t.dtype == torch.long:
        keep = t != ignore_index
        wt = (weight[t.clamp(min=0)] if weight is not None else torch.ones_like(lse)) * keep
    else:
        wt = torch.ones_like(lse)
    per = ce + z_loss * wt * lse ** 2
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.sum() / (wt.sum() if t.dtype == torch.long else t.shape[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", [{}, dict(weight=True, label_smoothing=0.1), dict(prob=True)])
def test_z_loss(device, reduction, opts):
    opts = dict(opts)
    prob = opts.pop("prob", False)
    x, w, t, b = _data((9,), 6, 7, device=device, ignore=None if prob else -100, prob=prob)
    x = x * 3  # large logits: the z-loss term matters
    if opts.pop("weight", False):
        opts["weight"] = torch.rand(7, device=device) + 0.1
    ours = lambda x_, w_, t_, b_, **k: LF.linear_cross_entropy(x_, w_, t_, linear_bias=b_, chunk_size=4, z_loss=0.05, **k)
    ref = lambda x_, w_, t_, b_, **k: _z_ref(x_, w_, t_, b_, z_loss=0.05, **k)
    opts["reduction"] = reduction
    check_loss(ours, ref, [x, w, t, b], kwargs=opts, diff=(0, 1, 3), check_dtype=False)


def test_z_loss_gradcheck():
    x, w, t, b = _data((5,), 3, 4, dtype=torch.float64, ignore=-100)
    for red in REDUCTIONS:
        f = lambda x_, w_: LF.linear_cross_entropy(x_, w_, t, linear_bias=b, reduction=red, chunk_size=2, z_loss=0.1)
        torch.autograd.gradcheck(f, (x.requires_grad_(), w.requires_grad_()))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("z", [0.0, 0.02])
def test_softcap(device, reduction, dtype, z):
    x, w, t, b = _data((11,), 8, 9, device=device, ignore=-100, dtype=dtype)
    x = x * 4  # logits beyond the cap: tanh's saturation matters
    ours = lambda x_, w_, t_, b_, **k: LF.linear_cross_entropy(x_, w_, t_, linear_bias=b_, chunk_size=4, softcap=2.0,
                                                               z_loss=z, **k)
    ref = lambda x_, w_, t_, b_, **k: _z_ref(x_, w_, t_, b_, softcap=2.0, z_loss=z, **k)
    check_loss(ours, ref, [x, w, t, b], kwargs=dict(reduction=reduction), diff=(0, 1, 3), dtype=dtype,
               check_dtype=False)


def test_softcap_gradcheck():
    x, w, t, b = _data((5,), 3, 4, dtype=torch.float64, ignore=-100)
    for red in REDUCTIONS:
        f = lambda x_, w_: LF.linear_cross_entropy(3 * x_, w_, t, linear_bias=b, reduction=red, chunk_size=2,
                                                   softcap=1.5, z_loss=0.05)
        torch.autograd.gradcheck(f, (x.requires_grad_(), w.requires_grad_()))
