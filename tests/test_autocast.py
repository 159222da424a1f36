"""AMP autocast: each loss follows torch's autocast policy (result dtype, values, gradients in the
caller's dtypes), in eager mode and under torch.compile."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, assert_close

HALF = [torch.bfloat16, torch.float16]


def _cases(device, dtype):
    g = torch.Generator().manual_seed(0)

    def r(*s):
        return torch.randn(*s, generator=g).to(device=device, dtype=dtype)

    def u(*s):
        return torch.rand(*s, generator=g).to(device=device, dtype=dtype)

    t = torch.randint(0, 9, (6,), generator=g).to(device)
    return {
        "cross_entropy": ((r(6, 9), t), {"label_smoothing": 0.1}),
        "nll_loss": ((r(6, 9), t), {}),
        "binary_cross_entropy": ((u(6, 9).clamp(0.05, 0.95), u(6, 9)), {}),
        "binary_cross_entropy_with_logits": ((r(6, 9), u(6, 9)), {"pos_weight": u(9) + 0.5}),
        "multilabel_soft_margin_loss": ((r(6, 9), (u(6, 9) > 0.5).to(dtype)), {}),
        "l1_loss": ((r(6, 9), r(6, 9)), {}),
        "mse_loss": ((r(6, 9), r(6, 9)), {}),
        "huber_loss": ((r(6, 9), r(6, 9)), {"delta": 0.5}),
        "smooth_l1_loss": ((r(6, 9), r(6, 9)), {"beta": 0.5}),
        "soft_margin_loss": ((r(6, 9), torch.sign(r(6, 9))), {}),
        "poisson_nll_loss": ((r(6, 9), u(6, 9) * 3), {}),
        "gaussian_nll_loss": ((r(6, 9), r(6, 9), u(6, 9) + 0.5), {}),
        "kl_div": ((r(6, 9), u(6, 9)), {"reduction": "batchmean"}),
        "margin_ranking_loss": ((r(6, 9), r(6, 9), torch.sign(r(6, 9))), {"margin": 0.2}),
        "hinge_embedding_loss": ((r(6, 9), torch.sign(r(6, 9))), {"margin": 0.5}),
        "multi_margin_loss": ((r(6, 9), t), {"p": 2, "margin": 0.5}),
        "multilabel_margin_loss": ((r(6, 9), torch.tensor([[0, 3, -1, 1, 2, 0, 0, 0, 0]] * 6, device=device)), {}),
        "cosine_embedding_loss": ((r(6, 9), r(6, 9), torch.sign(r(6))), {"margin": 0.2}),
        "triplet_margin_loss": ((r(6, 9), r(6, 9), r(6, 9)), {"swap": True}),
        "ctc_loss": ((r(10, 6, 9).float().log_softmax(2).to(dtype), torch.randint(1, 9, (6, 4), generator=g).to(device),
                      torch.full((6,), 10, device=device), torch.tensor([4, 3, 2, 1, 0, 4], device=device)), {}),
    }


def _run(f, args, kwargs, device, dtype):
    leaf = args[0].detach().clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autocast(device, dtype=dtype):
            out = f(leaf, *args[1:], **kwargs)
    (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
    return out, grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", list(_cases("cpu", torch.float32)))
def test_autocast_matches_torch(device, dtype, name):
    args, kwargs = _cases(device, dtype)[name]
    if lossext.SPECS[name].autocast[("cpu", "cuda").index(device)] == "banned":
        for f in (F.binary_cross_entropy, LF.binary_cross_entropy):
            with pytest.raises(RuntimeError, match="unsafe to autocast"):
                _run(f, args, kwargs, device, dtype)
        return
    ours, ours_grad = _run(getattr(LF, name), args, kwargs, device, dtype)
    ref, ref_grad = _run(getattr(F, name), args, kwargs, device, dtype)
    assert ours.dtype == ref.dtype, f"{name}: loss dtype {ours.dtype} != torch's {ref.dtype}"
    assert ours_grad.dtype == ref_grad.dtype == dtype
    assert_close(ours, ref, dtype, "loss")
    assert_close(ours_grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_float32_and_float64_inputs(device):
    x = torch.randn(5, 7, device=device, dtype=torch.float64)
    t = torch.randint(0, 7, (5,), device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        assert LF.cross_entropy(x, t).dtype == F.cross_entropy(x, t).dtype == torch.float64
        assert LF.mse_loss(x.float(), x.float()).dtype == torch.float32


def test_autocast_under_compile():
    x = torch.randn(6, 9, dtype=torch.bfloat16, requires_grad=True)
    t = torch.randint(0, 9, (6,))

    def f(x, t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return LF.cross_entropy(x, t)

    out = torch.compile(f, fullgraph=True)(x, t)
    assert out.dtype == torch.float32
    (g,) = torch.autograd.grad(out, x)
    xr = x.detach().clone().requires_grad_()
    ref = F.cross_entropy(xr.float(), t)
    (gr,) = torch.autograd.grad(ref, xr)
    assert g.dtype == torch.bfloat16
    assert_close(out, ref, torch.bfloat16, "loss")
    assert_close(g, gr, torch.bfloat16, "grad")


def test_inplace_backward_under_autocast_leaves_logits_alone():
    x = torch.randn(6, 9, dtype=torch.bfloat16, requires_grad=True)
    before = x.detach().clone()
    t = torch.randint(0, 9, (6,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = LF.cross_entropy(x, t, inplace_backward=True)
    assert out.dtype == torch.float32
    assert torch.equal(x.detach(), before)
