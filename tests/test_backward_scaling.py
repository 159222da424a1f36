"""The eager backward of a reduced loss scales the gradient the forward wrote: returned as is when
grad_output is 1 (CPU), scaled in place when nothing else can see it (lossext::scale_grad_), out
of place when the graph is retained or differentiated. Every path must give torch's gradients."""
import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
from harness import DEVICES, assert_close, opcheck

OPS = torch.ops.lossext


def _pair(device, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 70, generator=g).to(device=device, dtype=dtype)
    return x, torch.randn(300, 70, generator=g).to(device=device, dtype=dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_scale_grad_inplace_op(device, dtype):
    g = torch.randn(5, 7, device=device).to(dtype)
    for go, expect in ((2.5, g.double() * 2.5), (1.0, g.double())):
        h = g.clone()
        OPS.scale_grad_(h, torch.tensor(go, device=device, dtype=dtype))
        assert_close(h, expect, dtype, f"grad_output {go}")
    p = torch.randn(4, 6, 3, device=device).to(dtype).permute(2, 0, 1)  # dense, not contiguous
    q = p.clone()
    OPS.scale_grad_(q, torch.tensor(-3.0, device=device, dtype=dtype))
    assert q.stride() == p.stride()
    assert_close(q, p.double() * -3.0, dtype, "permuted")
    with pytest.raises(RuntimeError, match="scale_grad_: expected a dense gradient"):
        OPS.scale_grad_(torch.randn(6, 6, device=device)[:, :3], torch.tensor(2.0, device=device))
    with pytest.raises(RuntimeError, match="scale_grad_: expected a 0-d grad_output"):
        OPS.scale_grad_(torch.randn(6, device=device), torch.ones(6, device=device))
    opcheck(OPS.scale_grad_.default, (torch.randn(3, 4, device=device).to(dtype), torch.tensor(2.0, device=device)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,class_target", [("mse_loss", False), ("binary_cross_entropy_with_logits", False),
                                               ("cross_entropy", True), ("nll_loss", True)])
def test_every_backward_path_matches_torch(device, name, class_target):
    x, y = _pair(device)
    if class_target:
        y = torch.randint(0, 70, (300,), device=device)
    ours, ref = getattr(LF, name), getattr(F, name)
    xr = x.detach().double().requires_grad_()
    (expect,) = torch.autograd.grad(ref(xr, y if not y.is_floating_point() else y.double()), xr)
    expect = expect.detach()

    # grad_output 1 and 3 through .backward(): the gradient lands in .grad (stolen, not copied)
    for scale in (1.0, 3.0):
        a = x.detach().clone().requires_grad_()
        (ours(a, y) * scale).backward()
        assert_close(a.grad, expect * scale, torch.float32, f"backward x{scale}")
    # retained graph: two backwards with different grad_outputs, each exact
    a = x.detach().clone().requires_grad_()
    loss = ours(a, y)
    (g1,) = torch.autograd.grad(loss, a, torch.tensor(2.0, device=device), retain_graph=True)
    (g2,) = torch.autograd.grad(loss, a, torch.tensor(-0.5, device=device))
    assert_close(g1, expect * 2.0, torch.float32, "first of two backwards")
    assert_close(g2, expect * -0.5, torch.float32, "second of two backwards")
    assert_close(g1, expect * 2.0, torch.float32, "first result untouched by the second backward")
    # a hook that keeps the gradient it sees: still the right values afterwards
    a = x.detach().clone().requires_grad_()
    kept = []
    a.register_hook(lambda g: kept.append(g))
    (ours(a, y) * 4.0).backward()
    assert_close(kept[0], expect * 4.0, torch.float32, "hooked gradient")
    assert_close(a.grad, expect * 4.0, torch.float32, "accumulated gradient")
    # accumulation into an existing .grad
    (ours(a, y) * 4.0).backward()
    assert_close(a.grad, expect * 8.0, torch.float32, "accumulated twice")
