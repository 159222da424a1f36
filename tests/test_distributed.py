"""lossext.distributed: vocab-parallel cross-entropy and linear cross-entropy over gloo process groups
spawned here (2 ranks with even slices, 3 ranks with uneven ones), against torch and the
single-process lossext; the cases live in tests/_distributed_cases.py (several per spawn: process
start-up is the cost). Single-process: opcheck of every native op, torch.compile of the non-distributed
losses unaffected."""
import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
from _distributed_cases import spawn
from harness import DEVICES, opcheck

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")
OPS = torch.ops.lossext


@pytest.mark.parametrize("world,uneven", [(2, False), (3, True)])
def test_logits_and_linear_match_torch(world, uneven):
    # Both losses in one spawn: process start-up is most of the cost.
    checked = spawn("match", world, uneven=uneven)
    assert all(c == checked[0] and min(c) > 0 for c in checked)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                    reason="NCCL needs two CUDA devices (gloo's CUDA all_gather is not relied on)")
def test_nccl_logits_and_linear_match_torch():
    checked = spawn("match", 2, timeout=300, device="cuda")
    assert all(c == checked[0] and min(c) > 0 for c in checked)


def test_one_collective_per_forward_dtensor_and_errors():
    for res in spawn("misc", 2):
        out = res["counting"]
        gather = {"all_gather_into_tensor", "all_gather_single"}
        assert len(out["logits_forward"]) == 1 and out["logits_forward"][0] in gather, out
        assert out["logits_backward"] == [], out
        assert len(out["linear_forward"]) == 1 and out["linear_forward"][0] in gather, out
        assert out["linear_backward"] == ["all_reduce"], out
        assert out["double_backward"] is not None and "double backward" in out["double_backward"], out
        assert res["dtensor"] is True and res["autocast"] is True
        out = res["errors"]
        assert out["too_large"] is not None and "out of bounds" in out["too_large"], out
        assert out["negative"] is not None and "out of bounds" in out["negative"], out


# ---- single process ---------------------------------------------------------------------------------

def _stats_pair(x, t, eps, w=None):
    # The statistics of two slices [0, 3) and [3, 7) of a 7-class problem, gathered by hand.
    a = OPS.vocab_parallel_cross_entropy_stats(x[:, :3], t, 0, w, -100, eps)
    b = OPS.vocab_parallel_cross_entropy_stats(x[:, 3:], t, 3, w, -100, eps)
    return torch.stack([a, b])


def test_opcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 3, 6, -100, 2])
    w = torch.rand(7, generator=g, dtype=torch.float64) + 0.5
    for eps, wt in ((0.0, None), (0.1, w)):
        opcheck(OPS.vocab_parallel_cross_entropy_stats.default, (x[:, 3:], t, 3, wt, -100, eps))
        st = _stats_pair(x, t, eps, wt)
        for red in (0, 1, 2):
            opcheck(OPS.vocab_parallel_cross_entropy_combine.default, (st, t, wt, red, -100, eps, torch.float64))
            loss, saved, den = OPS.vocab_parallel_cross_entropy_combine(st, t, wt, red, -100, eps, torch.float64)
            go = torch.rand(loss.shape, generator=g, dtype=torch.float64)
            opcheck(OPS.vocab_parallel_cross_entropy_backward.default,
                    (go, x[:, 3:].contiguous(), t, wt, 3, red, -100, eps, saved, den))
            # the two slices' gradients are torch's
            xr = x.clone().requires_grad_()
            ref = F.cross_entropy(xr, t, weight=wt, label_smoothing=eps, reduction=["none", "mean", "sum"][red])
            ref.backward(go)
            torch.testing.assert_close(loss, ref.detach())
            g0 = OPS.vocab_parallel_cross_entropy_backward(go, x[:, :3], t, wt, 0, red, -100, eps, saved, den)
            g1 = OPS.vocab_parallel_cross_entropy_backward(go, x[:, 3:], t, wt, 3, red, -100, eps, saved, den)
            torch.testing.assert_close(torch.cat([g0, g1], 1), xr.grad)
    h = torch.randn(5, 4, generator=g, dtype=torch.float64)
    W = torch.randn(7, 4, generator=g, dtype=torch.float64)
    b = torch.randn(7, generator=g, dtype=torch.float64)
    opcheck(OPS.vocab_parallel_linear_cross_entropy_stats.default, (h, W[3:], t, b[3:], 3, w, -100, 0.1, 2))
    st = torch.stack([OPS.vocab_parallel_linear_cross_entropy_stats(h, W[:3], t, b[:3], 0, w, -100, 0.1, 2),
                      OPS.vocab_parallel_linear_cross_entropy_stats(h, W[3:], t, b[3:], 3, w, -100, 0.1, 2)])
    loss, saved, den = OPS.vocab_parallel_cross_entropy_combine(st, t, w, 1, -100, 0.1, torch.float64)
    opcheck(OPS.vocab_parallel_linear_cross_entropy_backward.default,
            (torch.tensor(1.0, dtype=torch.float64), h, W[3:].contiguous(), t, b[3:].contiguous(), 3, w, 1, -100, 0.1,
             2, saved, den, [True, True, True]))


def test_combine_raises_on_bad_targets():
    x = torch.randn(3, 7)
    t = torch.tensor([0, 3, 6])
    st = _stats_pair(x, t, 0.0)
    with pytest.raises(IndexError, match="out of bounds"):
        OPS.vocab_parallel_cross_entropy_combine(st[:1], t, None, 1, -100, 0.0, torch.float32)  # 6 in no slice
    with pytest.raises(RuntimeError, match="several ranks"):
        OPS.vocab_parallel_cross_entropy_combine(torch.stack([st[0], st[0]]), t, None, 1, -100, 0.0, torch.float32)
    with pytest.raises(IndexError, match="out of bounds"):
        OPS.vocab_parallel_cross_entropy_stats(x, torch.tensor([0, -2, 1]), 0, None, -100, 0.0)


def test_compile_of_single_rank_losses_unaffected():
    x = torch.randn(6, 9, requires_grad=True)
    t = torch.tensor([0, 8, -100, 3, 4, 5])
    f = torch.compile(lambda x_: LF.cross_entropy(x_, t, label_smoothing=0.1), fullgraph=True)
    loss = f(x)
    loss.backward()
    xr = x.detach().clone().requires_grad_()
    ref = F.cross_entropy(xr, t, label_smoothing=0.1)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(x.grad, xr.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_two_slices_by_hand_half_types_and_layouts(dtype, device):
    # The ops on two slices of one process (no process group), half types, a transposed (N, V) input
    # (the driver's spatial layout), against torch in float32.
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(7, 9, generator=g) * 2).to(dtype).to(device)
    t = torch.tensor([0, 8, 3, -100, 4, 2, 5], device=device)
    w = (torch.rand(9, generator=g) + 0.5).to(dtype).to(device)
    for layout in ("rows", "transposed"):
        parts = [x[:, :4], x[:, 4:]]
        if layout == "transposed":
            parts = [p.t().contiguous().t() for p in parts]
        for eps, wt, red in ((0.0, None, 1), (0.2, w, 1), (0.1, w, 0)):
            st = torch.stack([OPS.vocab_parallel_cross_entropy_stats(p, t, o, wt, -100, eps)
                              for p, o in zip(parts, (0, 4))])
            assert st.dtype == torch.float32
            loss, saved, den = OPS.vocab_parallel_cross_entropy_combine(st, t, wt, red, -100, eps, dtype)
            go = torch.ones(loss.shape, dtype=dtype, device=device)
            grads = [OPS.vocab_parallel_cross_entropy_backward(go, p, t, wt, o, red, -100, eps, saved, den)
                     for p, o in zip(parts, (0, 4))]
            xr = x.float().clone().requires_grad_()
            ref = F.cross_entropy(xr, t, weight=None if wt is None else wt.float(), label_smoothing=eps,
                                  reduction=["none", "mean", "sum"][red])
            ref.backward(go.float())
            tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-2, rtol=1e-2)
            assert loss.dtype == dtype and grads[0].dtype == dtype
            torch.testing.assert_close(loss.float(), ref.detach(), **tol)
            torch.testing.assert_close(torch.cat(grads, 1).float(), xr.grad, **tol)
