"""torch's dtype rules around the math (issue 8, items 6, 8, 9): integer and bool operands are
promoted as torch promotes them, integer/complex inputs raise torch's exception types, and the
result dtype of mixed-dtype calls is torch's."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF


def _g(seed):
    return torch.Generator().manual_seed(seed)


X = torch.randn(4, 3, generator=_g(0))
XI = torch.randint(-3, 4, (4, 3), generator=_g(1))
TB = torch.rand(4, 3, generator=_g(2)) > 0.5
TS = torch.randint(0, 2, (4, 3), generator=_g(3)) * 2 - 1
W = torch.rand(4, 3, generator=_g(4))

PAIR = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "soft_margin_loss"]
OPERANDS = {
    "float input, int64 target": (X, XI, None),
    "float input, bool target": (X, TB, None),
    "float input, +-1 int target": (X, TS, None),
    "int input, float target": (XI, X, None),
    "int input and target": (XI, XI + 1, None),
    "int input and target, float weight": (XI, XI + 1, W),
    "float input, bool target, float weight": (X, TB, W),
    "float input, int target, float64 weight": (X, XI, W.double()),
    "complex": (X.to(torch.complex64), X.to(torch.complex64), None),
}


def _outcome(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return f(*args, **kw)
        except Exception as e:  # noqa: BLE001 - the exception type is what is compared
            return type(e)


# Complex soft_margin_loss: torch computes it, lossext raises NotImplementedError (README, deviations).
# (Complex l1_loss is computed: tests/test_l1_loss_complex.py.)
COMPLEX_DEVIATIONS = {"soft_margin_loss"}


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("case", list(OPERANDS))
@pytest.mark.parametrize("name", PAIR)
def test_pair_losses_promote_integer_and_bool_operands_as_torch(name, case, reduction):
    x, t, w = OPERANDS[case]
    if w is not None and name not in ("mse_loss", "l1_loss", "huber_loss"):
        pytest.skip("no weight")
    kw = {} if w is None else {"weight": w}
    if name == "l1_loss" and case == "int input and target" and reduction != "mean":
        pytest.skip("torch returns an integer l1 loss; lossext raises (README, deviations)")
    ref = _outcome(getattr(F, name), x, t, reduction=reduction, **kw)
    got = _outcome(getattr(LF, name), x, t, reduction=reduction, **kw)
    if case == "complex" and name in COMPLEX_DEVIATIONS:
        assert got is NotImplementedError
        return
    if isinstance(ref, type):
        assert got is ref, f"torch raises {ref.__name__}, lossext {got}"
        return
    assert isinstance(got, torch.Tensor), f"torch computes, lossext raises {got}"
    assert got.dtype == ref.dtype and got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_integer_targets_keep_input_gradients():
    x = X.clone().requires_grad_()
    (g,) = torch.autograd.grad(LF.mse_loss(x, XI), x)
    xr = X.clone().requires_grad_()
    (r,) = torch.autograd.grad(F.mse_loss(xr, XI), xr)
    torch.testing.assert_close(g, r)
    assert LF.l1_loss(torch.arange(4), torch.arange(4) + 1, weight=torch.ones(4)).item() == 1.0  # the case


@pytest.mark.parametrize("name, call", [
    ("mse_loss", lambda M, x: M.mse_loss(x, x)),
    ("huber_loss", lambda M, x: M.huber_loss(x, x)),
    ("smooth_l1_loss", lambda M, x: M.smooth_l1_loss(x, x)),
    ("binary_cross_entropy_with_logits", lambda M, x: M.binary_cross_entropy_with_logits(x, x.float())),
    ("binary_cross_entropy", lambda M, x: M.binary_cross_entropy(x, x)),
    ("multilabel_soft_margin_loss", lambda M, x: M.multilabel_soft_margin_loss(x, x)),
])
@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
def test_integer_and_complex_inputs_raise_not_implemented(name, call, dtype):
    x = torch.ones(2, 3).to(dtype)
    assert _outcome(call, F, x) is NotImplementedError  # torch: "... not implemented for 'Long'"
    with pytest.raises(NotImplementedError, match=name):
        call(LF, x)


def test_exception_types_of_other_dtype_errors_match_torch():
    f = torch.ones(3)
    for call in (lambda M: M.binary_cross_entropy(f.long(), f),   # dtype mismatch first: RuntimeError
                 lambda M: M.kl_div(f.to(torch.complex64), f.to(torch.complex64)),
                 lambda M: M.kl_div(f.long(), f)):
        ref, got = _outcome(call, F), _outcome(call, LF)
        assert isinstance(ref, type) and got is ref, (ref, got)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_logits_loss_has_the_target_dtype(reduction):
    x = torch.randn(4, 3, generator=_g(5))
    t = torch.rand(4, 3, generator=_g(6))
    pw = torch.rand(3, generator=_g(7)).double()
    for a, b, kw in ((x.double(), t.bfloat16(), {}), (x, t, {"pos_weight": pw}), (x, t.double(), {}),
                     (x, t, {"weight": pw})):
        ref = F.binary_cross_entropy_with_logits(a, b, reduction=reduction, **kw)
        got = LF.binary_cross_entropy_with_logits(a, b, reduction=reduction, **kw)
        assert got.dtype == ref.dtype, (a.dtype, b.dtype, kw, got.dtype, ref.dtype)
        torch.testing.assert_close(got, ref, rtol=1e-2 if ref.dtype == torch.bfloat16 else 1e-5, atol=1e-5)
    xc = x.double().requires_grad_()
    torch._dynamo.reset()
    f = torch.compile(lambda a, b: LF.binary_cross_entropy_with_logits(a, b, reduction=reduction),
                      fullgraph=True, backend="aot_eager")
    assert f(xc, t.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "poisson_nll_loss", "kl_div"])
def test_zero_dim_float64_operand_beside_float16_keeps_a_float64_gradient(name):
    x = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float16)
    t = torch.tensor(0.1234567, dtype=torch.float64)
    outs = []
    for M in (F, LF):
        xs, ts = x.clone().requires_grad_(), t.clone().requires_grad_()
        loss = getattr(M, name)(xs, ts, reduction="sum")
        outs.append((loss, *torch.autograd.grad(loss, (xs, ts))))
    (lr, gxr, gtr), (lg, gxg, gtg) = outs
    assert lg.dtype == lr.dtype and gxg.dtype == gxr.dtype and gtg.dtype == torch.float64
    torch.testing.assert_close(gtg, gtr, rtol=1e-12, atol=1e-12)  # not rounded to float16 on the way
    torch.testing.assert_close(gxg, gxr)
    torch.testing.assert_close(lg.double(), lr.double(), rtol=2e-3, atol=1e-3)


def test_fuzz_found_cases():
    """Found by tests/test_fuzz.py (seeds 1 and 2)."""
    x = torch.full((5, 1), 1e4, dtype=torch.float16)  # the sum of 1e8s overflows float16, not float32
    t = torch.tensor(0.5)
    ref, got = F.mse_loss(x, t, reduction="sum"), LF.mse_loss(x, t, reduction="sum")
    assert got.dtype == ref.dtype == torch.float32 and torch.isfinite(got)
    torch.testing.assert_close(got, ref)
    assert _outcome(F.smooth_l1_loss, X, TB, beta=0.0) is RuntimeError  # beta=0 is torch's l1_loss
    assert _outcome(LF.smooth_l1_loss, X, TB, beta=0.0) is RuntimeError
    e = torch.zeros(0, 0, dtype=torch.float64)
    assert LF.multilabel_soft_margin_loss(e, e, reduction="sum").item() == 0.0  # torch: 0, not 0 * 1/0
    assert F.multilabel_soft_margin_loss(e, e, reduction="sum").item() == 0.0
