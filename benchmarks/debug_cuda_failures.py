"""Diagnostics for CUDA-only mismatches (prints CPU vs CUDA vs float64 torch)."""
import torch, torch.nn.functional as F
import lossext.functional as LF
torch.manual_seed(0)
for dt in (torch.float32, torch.bfloat16):
    for weighted, ls, ii in [(False, 0.0, -100), (True, 0.3, -100), (True, 0.0, -100), (False, 0.3, -100), (True, 0.3, 1), (False, 0.0, 1)]:
        x = (torch.randn(6, dtype=torch.float64) * 3).to(dt)
        t = torch.tensor(2)
        w = (torch.rand(6) + 0.25).to(dt) if weighted else None
        ref_x = x.double().requires_grad_()
        ref = F.cross_entropy(ref_x, t, None if w is None else w.double(), ignore_index=ii, label_smoothing=ls)
        (gr,) = torch.autograd.grad(ref, ref_x)
        for dev in ("cpu", "cuda"):
            xd = x.to(dev).requires_grad_()
            l = LF.cross_entropy(xd, t.to(dev), None if w is None else w.to(dev), ignore_index=ii, label_smoothing=ls)
            (g,) = torch.autograd.grad(l, xd)
            print(dt, weighted, ls, ii, dev, f"loss err {abs(l.double().item() - ref.item()):.2e}",
                  f"grad err {(g.double().cpu() - gr).abs().max().item():.2e}", f"lse/loss {l.item():.5f} ref {ref.item():.5f}")
for dt in (torch.float16, torch.bfloat16):
    for vshape in [(5, 7), (5, 1), (5,), ()]:
        x = torch.randn(5, 7, dtype=dt); y = torch.randn(5, 7, dtype=dt); v = (torch.rand(vshape) + 0.1).to(dt)
        vr = v.double().requires_grad_()
        ref = F.gaussian_nll_loss(x.double(), y.double(), vr, reduction="none")
        go = torch.randn(ref.shape, dtype=torch.float64)
        (gr,) = torch.autograd.grad(ref, vr, go)
        for dev in ("cpu", "cuda"):
            vd = v.to(dev).requires_grad_()
            l = LF.gaussian_nll_loss(x.to(dev), y.to(dev), vd, reduction="none")
            (g,) = torch.autograd.grad(l, vd, go.to(dt).to(dev))
            print(dt, vshape, dev, f"loss err {(l.double().cpu() - ref).abs().max().item():.2e}",
                  f"var grad err {(g.double().cpu() - gr).abs().max().item():.2e} (|ref| max {gr.abs().max().item():.2e})")
