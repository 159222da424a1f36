"""Operands of another dtype than the computation's are read natively (issue 8, items 3/5 and 6).

The pointwise drivers convert each operand on load and each output on store
(PointwiseArgs::in_dtype / out_dtype), so an integer or bool target, a float64 target beside a
float32 input or a grad_output of another dtype costs no converted copy, and the gradient of a
broadcast half-type operand is summed in float and rounded once (per-element overflows of both
signs cancel as they do in float, instead of giving NaN)."""
import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
COPY_OPS = ("aten::to", "aten::_to_copy", "aten::copy_")


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _copies(fn):
    """The names of the converting/copying ATen calls made while fn() runs."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return [e.name for e in prof.events() if e.name in COPY_OPS]


CASES = {
    "mse int64 target": ("mse_loss", lambda x: torch.randint(-3, 4, x.shape, generator=_g(1)), {}),
    "l1 int32 target": ("l1_loss", lambda x: torch.randint(-3, 4, x.shape, generator=_g(2)).int(), {}),
    "smooth_l1 uint8 target": ("smooth_l1_loss", lambda x: torch.randint(0, 4, x.shape, generator=_g(3)).byte(), {}),
    "soft_margin +-1 int64 target": ("soft_margin_loss",
                                     lambda x: torch.randint(0, 2, x.shape, generator=_g(4)) * 2 - 1, {}),
    "mse bool target": ("mse_loss", lambda x: torch.rand(x.shape, generator=_g(5)) > 0.5, {}),
    "mse float64 target": ("mse_loss", lambda x: torch.randn(x.shape, generator=_g(6), dtype=torch.float64), {}),
    "huber broadcast int8 target": ("huber_loss", lambda x: torch.randint(-3, 4, x.shape[1:], generator=_g(7)).to(torch.int8),
                                    {"delta": 0.5}),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_other_dtype_operands_match_torch_in_float(case, reduction, device):
    name, make_t, kw = CASES[case]
    x = torch.randn(33, 17, generator=_g(0)).to(device).requires_grad_()
    t = make_t(x.detach().cpu()).to(device)
    out = getattr(LF, name)(x, t, reduction=reduction, **kw)
    # torch's reference: the target promoted by hand (torch's huber backward rejects an int target)
    dt = torch.promote_types(x.dtype, t.dtype) if t.is_floating_point() else x.dtype
    xr = x.detach().to(dt).requires_grad_()
    ref = getattr(F, name)(xr, t.to(dt), reduction=reduction, **kw)
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out, ref)
    go = torch.rand(out.shape, generator=_g(9)).to(device, out.dtype)
    g, = torch.autograd.grad(out, x, go)
    gr, = torch.autograd.grad(ref, xr, go)
    assert g.dtype == x.dtype
    torch.testing.assert_close(g, gr.to(g.dtype))


@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_other_dtype_operands_are_not_copied(case, reduction):
    """Neither the forward nor the backward converts an operand with a copy (the CPU profiler
    records every aten::to / _to_copy / copy_ made below lossext's ops)."""
    name, make_t, kw = CASES[case]
    x = torch.randn(64, 31, generator=_g(0), requires_grad=True)
    t = make_t(x.detach())

    def step():
        out = getattr(LF, name)(x, t, reduction=reduction, **kw)
        out.backward(torch.ones_like(out))

    assert _copies(step) == []


@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_broadcast_half_operand_gradient_is_summed_in_float(dtype, device):
    """mse 'sum' with a target broadcast over [6e4, -6e4]: the per-element gradients -1.2e5 and
    +1.2e5 overflow float16; summed in float they cancel to 0 (torch computed in float: 0)."""
    x = torch.tensor([[60000.0], [-60000.0]], dtype=dtype, device=device)
    t = torch.zeros(1, 1, dtype=dtype, device=device, requires_grad=True)
    # t itself (not t.expand: then autograd's own half-type sum of the expanded gradient overflows)
    g, = torch.autograd.grad(LF.mse_loss(x, t, reduction="sum"), t)
    tf = t.detach().float().requires_grad_()
    gf, = torch.autograd.grad(F.mse_loss(x.float(), tf.expand(2, 1), reduction="sum"), tf)
    assert g.dtype == dtype
    torch.testing.assert_close(g.float(), gf.to(dtype).float())
    assert g.item() == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_half_operand_gradient_is_rounded_once(device):
    """A float16 target broadcast over 4096 rows: its gradient is the float sum rounded once."""
    x = torch.randn(4096, 8, generator=_g(3)).half().to(device)
    t = torch.randn(1, 8, generator=_g(4)).half().to(device).requires_grad_()
    g, = torch.autograd.grad(LF.l1_loss(x, t, reduction="sum"), t)
    tf = t.detach().float().requires_grad_()
    gf, = torch.autograd.grad(F.l1_loss(x.float(), tf.expand(4096, 8), reduction="sum"), tf)
    assert torch.equal(g, gf.half())
