"""What lossext's autograd must never do silently (issue 8, items 1-3; issue 11): drop the gradient
of an argument that requires grad, give a wrong second derivative through a loss, or round a float16
gradient before grad_output (loss scaling) multiplies it."""
import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
from harness import DEVICES

OPS = torch.ops.lossext
REDUCTIONS = ["none", "mean", "sum"]


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _inputs(name, x, g):
    """(args after the input, kwargs) of loss `name` for an input shaped like x (4, 5)."""
    shape, dt, dev = x.shape, x.dtype, x.device

    def r(*s, lo=0.0, hi=1.0):
        return (torch.rand(*s, generator=g) * (hi - lo) + lo).to(dev, dt)

    if name in ("cross_entropy", "nll_loss"):
        return (torch.randint(0, shape[1], shape[:1], generator=g).to(dev),), {}
    if name == "gaussian_nll_loss":
        return (torch.randn(*shape, generator=g).to(dev, dt), r(*shape, lo=0.5, hi=2.0)), {}
    signs = (torch.randint(0, 2, shape, generator=g) * 2 - 1).to(dev, dt)
    if name in ("soft_margin_loss", "hinge_embedding_loss"):
        return (signs,), {}
    if name == "margin_ranking_loss":
        return (torch.randn(*shape, generator=g).to(dev, dt), signs), {}
    if name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "multilabel_soft_margin_loss",
                "poisson_nll_loss", "kl_div"):
        return (r(*shape, lo=0.1, hi=0.9),), {}
    return (torch.randn(*shape, generator=g).to(dev, dt),), {}


def _loss(name):
    """The functional, with the input mapped into its domain (binary_cross_entropy: (0, 1))."""
    f = getattr(LF, name)
    if name == "binary_cross_entropy":
        return lambda x, *a, **k: f(torch.sigmoid(x), *a, **k)
    if name == "nll_loss":
        return lambda x, *a, **k: f(torch.log_softmax(x, 1), *a, **k)
    return f


ALL = ["binary_cross_entropy_with_logits", "binary_cross_entropy", "l1_loss", "mse_loss", "huber_loss",
       "smooth_l1_loss", "soft_margin_loss", "poisson_nll_loss", "gaussian_nll_loss", "kl_div",
       "cross_entropy", "nll_loss", "multilabel_soft_margin_loss", "margin_ranking_loss", "hinge_embedding_loss"]


# ---- item 1: no silently dropped gradient ----------------------------------------------------------
@pytest.mark.parametrize("arg", ["weight", "pos_weight"])
def test_bce_with_logits_weights_requiring_grad_raise(arg):
    x, t = torch.randn(4, 3, requires_grad=True), torch.rand(4, 3)
    w = torch.rand(3, requires_grad=True)
    msg = f"not differentiable with respect to argument '{arg}'"
    with pytest.raises(RuntimeError, match=msg):  # torch raises the same
        F.binary_cross_entropy_with_logits(x, t, **{arg: w})
    with pytest.raises(RuntimeError, match=msg):
        LF.binary_cross_entropy_with_logits(x, t, **{arg: w})
    with pytest.raises(RuntimeError, match=msg):  # dispatcher callers: the registered autograd
        OPS.binary_cross_entropy_with_logits(x, t, w if arg == "weight" else None, w if arg == "pos_weight" else None,
                                             1, [True, False])
    with torch.no_grad():  # nothing to differentiate: fine, as torch
        LF.binary_cross_entropy_with_logits(x, t, **{arg: w})


@pytest.mark.parametrize("name", ALL)
def test_every_differentiable_looking_tensor_gets_its_gradient_or_raises(name):
    """Every tensor argument that requires grad either gets torch's gradient or raises; none is None."""
    x = torch.randn(4, 5, dtype=torch.float64)
    args, kw = _inputs(name, x, _g(1))
    if name in ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                "multilabel_soft_margin_loss"):
        kw["weight"] = torch.rand(5, dtype=torch.float64) + 0.5
    if name in ("l1_loss", "mse_loss", "huber_loss"):
        kw["weight"] = torch.rand(4, 5, dtype=torch.float64) + 0.5
    if name == "binary_cross_entropy_with_logits":
        kw["pos_weight"] = torch.rand(5, dtype=torch.float64) + 0.5
    named = {"input": x, **{f"arg{i}": a for i, a in enumerate(args)}, **kw}
    for key, t in named.items():
        if not t.is_floating_point():
            continue
        leaf = t.clone().requires_grad_()
        call = {k: (leaf if k == key else v) for k, v in named.items()}
        xs = call.pop("input")
        pos = [call.pop(f"arg{i}") for i in range(len(args))]
        try:
            out = _loss(name)(xs, *pos, **call)
        except RuntimeError as e:
            assert "not differentiable with respect to argument" in str(e), (name, key, e)
            continue
        if not out.requires_grad:  # torch's loss does not depend on it differentiably either
            ref = getattr(F, name)(xs, *pos, **call) if name not in ("binary_cross_entropy", "nll_loss") else None
            assert ref is not None and not ref.requires_grad, f"{name}: {key} requires grad, the loss does not"
            continue
        (g,) = torch.autograd.grad(out, leaf, allow_unused=True)
        assert g is not None, f"{name}: the gradient of {key} was dropped"


# ---- item 2: second derivatives are torch's (issue 11) or raise --------------------------------------
def _first_grad(name, reduction, compiled, lib=LF):
    p = torch.randn(4, 5, generator=_g(2), dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 5, generator=_g(3), dtype=torch.float64, requires_grad=True)
    args, kw = _inputs(name, x, _g(4))
    f = _loss(name) if lib is LF else _torch_loss(name)

    def fn(x, p):
        return f(x * p, *args, reduction=reduction, **kw).sum()

    if compiled:
        torch._dynamo.reset()  # one code object compiled per case: stay under the recompile limit
        fn = torch.compile(fn, fullgraph=True, backend="aot_eager")
    (g,) = torch.autograd.grad(fn(x, p), x, create_graph=True)
    return g, p


def _torch_loss(name):
    f = getattr(F, name)
    if name == "binary_cross_entropy":
        return lambda x, *a, **k: f(torch.sigmoid(x), *a, **k)
    if name == "nll_loss":
        return lambda x, *a, **k: f(torch.log_softmax(x, 1), *a, **k)
    return f


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ALL)
def test_double_backward_is_torchs(name, reduction, compiled):
    """A gradient penalty through the loss: torch's second derivative (with respect to the input
    and to a parameter before it), or, where torch.compile's backward has none, torch's error."""
    if compiled and reduction == "none" and name not in ("mse_loss", "cross_entropy"):
        pytest.skip("one compiled 'none' case per family keeps the suite short")
    results = []
    for lib in (LF, F):
        try:
            g, p = _first_grad(name, reduction, compiled, lib)
            (10 * (g ** 2).sum()).backward()
            results.append((g.detach(), p.grad))
        except RuntimeError as e:
            results.append(type(e))
    if isinstance(results[1], type):  # torch.compile's backward has no second derivative here
        assert results[0] is RuntimeError, (name, results)
        return
    assert not isinstance(results[0], type), (name, results)
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


@pytest.mark.parametrize("name", ["multi_margin_loss", "multilabel_margin_loss"])
def test_second_derivative_where_torch_raises(name):
    """torch has no double backward here; lossext's is the loss's own (gradgradcheck in
    tests/test_double_backward.py), never a silent constant."""
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 5, (4,)) if name == "multi_margin_loss" else torch.tensor([[1, 3, -1, 0, 0]] * 4)
    (g,) = torch.autograd.grad(getattr(F, name)(x, t), x, create_graph=True)
    with pytest.raises(RuntimeError, match="not implemented"):
        (g ** 2).sum().backward()
    (g,) = torch.autograd.grad(getattr(LF, name)(x, t, margin=1.5) if name == "multi_margin_loss"
                               else getattr(LF, name)(x, t), x, create_graph=True)
    (g ** 2).sum().backward()
    assert x.grad is not None


def test_first_derivative_with_create_graph_still_matches_torch():
    x = torch.randn(6, generator=_g(5), dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, generator=_g(6), dtype=torch.float64)
    (a,) = torch.autograd.grad(LF.huber_loss(x, t, delta=0.5), x, create_graph=True)
    (b,) = torch.autograd.grad(F.huber_loss(x, t, delta=0.5), x, create_graph=True)
    torch.testing.assert_close(a.detach(), b.detach())


def test_func_second_derivatives_and_forward_mode():
    t = torch.randn(5, dtype=torch.float64)
    x = torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(torch.func.grad(lambda x: LF.mse_loss(x, t))(x),
                               torch.func.grad(lambda x: F.mse_loss(x, t))(x))
    torch.testing.assert_close(torch.func.jacrev(torch.func.jacrev(lambda x: LF.mse_loss(x * x, t)))(x),
                               torch.func.jacrev(torch.func.jacrev(lambda x: F.mse_loss(x * x, t)))(x))
    torch.testing.assert_close(torch.func.grad(lambda x: torch.func.grad(lambda y: LF.mse_loss(y * y, t))(x).sum())(x),
                               torch.func.grad(lambda x: torch.func.grad(lambda y: F.mse_loss(y * y, t))(x).sum())(x))
    # lossext has no forward-mode derivatives: a clear NotImplementedError, never a zero tangent.
    with pytest.raises(NotImplementedError, match="forward-mode AD"):
        torch.func.hessian(lambda x: LF.mse_loss(x, t))(x)
    with pytest.raises(NotImplementedError, match="forward-mode AD"):
        torch.func.jvp(lambda x: LF.mse_loss(x, t), (x,), (torch.ones_like(x),))
    y = torch.tensor([1])  # multi_margin: lossext's own second derivative (torch has none)
    torch.testing.assert_close(torch.func.jacrev(torch.func.jacrev(lambda x: LF.multi_margin_loss(x[None], y, p=2)))(x),
                               torch.autograd.functional.hessian(lambda x: LF.multi_margin_loss(x[None], y, p=2), x))


# ---- item 3: float16 gradients under loss scaling ---------------------------------------------------
GRAD_OUTPUTS = [0.0, 1e-3, 1.0, 65504.0]  # 65504: float16's largest finite (a GradScaler-style scale)
FP16_LOSSES = ALL


def _fp16_check(fn, leaves, others, go):
    """lossext's float16 gradients vs torch's computed in float32 from the same values (then rounded
    once): within float16 rounding, elementwise."""
    xs = [t.detach().clone().requires_grad_() for t in leaves]
    out = fn(*xs, *others)
    gs = torch.autograd.grad(out, xs, torch.tensor(go, dtype=out.dtype))
    ref_x = [t.detach().float().requires_grad_() for t in leaves]
    ref_out = fn(*ref_x, *[o.float() if o.is_floating_point() else o for o in others], torch_ref=True)
    refs = torch.autograd.grad(ref_out, ref_x, torch.tensor(go, dtype=torch.float16).float())
    for g, r in zip(gs, refs):
        assert g.dtype == torch.float16
        r16 = r.half().double()
        g = g.double()
        assert torch.equal(g.isnan(), r16.isnan()), "NaN pattern"
        fin = r16.isfinite()
        assert torch.equal(g[~fin & ~r16.isnan()], r16[~fin & ~r16.isnan()]), "infinities"
        err = (g[fin] - r16[fin]).abs()
        if err.numel():
            # float16 rounding of the value, plus float32-level cancellation relative to the largest
            # gradient, plus one float16 subnormal step
            atol = 6e-8 + 1e-5 * r16[fin].abs().max()
            assert (err <= 2e-3 * r16[fin].abs() + atol).all(), f"max err {err.max().item():.3e}"


def _with_ref(name, **opts):
    def fn(x, *rest, torch_ref=False):
        f = getattr(F, name) if torch_ref else getattr(LF, name)
        return f(x, *rest, **opts)
    return fn


@pytest.mark.parametrize("go", GRAD_OUTPUTS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", FP16_LOSSES)
def test_fp16_gradients_apply_grad_output_before_rounding(name, reduction, go):
    x = torch.randn(64, 33, generator=_g(7)).half()
    args, kw = _inputs(name, x, _g(8))
    if name == "binary_cross_entropy":
        x = torch.rand(64, 33, generator=_g(9)).clamp(0.01, 0.99).half()
    leaves = [x] + [a for a in args if a.is_floating_point() and name not in ("soft_margin_loss", "hinge_embedding_loss")]
    others = [a for a in args if not any(a is l for l in leaves)]
    _fp16_check(_with_ref(name, reduction=reduction, **kw), leaves, others, go)


@pytest.mark.parametrize("go", GRAD_OUTPUTS)
def test_fp16_issue_cases(go):
    x, t = torch.tensor([1e-5, 2.0]).half(), torch.tensor([5.0, 1.0]).half()
    _fp16_check(_with_ref("poisson_nll_loss", log_input=False, reduction="sum"), [x], [t], go)
    w = torch.full((2,), 300.0).half()  # weighted mse: 2 d w / sum(w) before grad_output
    _fp16_check(_with_ref("mse_loss", weight=w), [torch.tensor([300.0, -300.0]).half()], [torch.zeros(2).half()], go)
    xb = torch.randn(256, 8, generator=_g(10)).half()  # l1 with a broadcast target: summed gradient
    _fp16_check(_with_ref("l1_loss", reduction="sum"), [xb, torch.randn(1, 8, generator=_g(11)).half()], [], go)
    v = torch.tensor([1e-4, 1.0]).half()  # gaussian 1/var: huge before grad_output 0 (NaN once)
    _fp16_check(_with_ref("gaussian_nll_loss", reduction="sum"), [torch.tensor([3.0, 1.0]).half()],
                [torch.zeros(2).half(), v], go)


@pytest.mark.parametrize("go", [1.0, 65504.0])
def test_fp16_mean_of_a_million_elements_keeps_normal_gradients(go):
    x = torch.randn(1 << 20, generator=_g(12)).half()
    t = torch.randn(1 << 20, generator=_g(13)).half()
    _fp16_check(_with_ref("mse_loss"), [x], [t], go)
