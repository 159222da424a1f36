"""Large fresh CPU outputs are advised to use transparent huge pages (csrc/include/lossext/fresh.h):
values unchanged, and the pages really are huge where the kernel allows it."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
from harness import assert_close

THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def _thp_mode():
    try:
        with open(THP) as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "never"


def _anon_huge_kb(ptr: int, nbytes: int) -> int:
    """AnonHugePages (kB) of this process's mappings that overlap [ptr, ptr + nbytes). (The advice
    splits a buffer's mapping at its 2 MiB-aligned interior.)"""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo < ptr + nbytes and ptr < hi
            elif inside and head == "AnonHugePages:":
                total += int(line.split()[1])
    return total


def _control_huge_kb(nbytes: int) -> int:
    """AnonHugePages (kB) the kernel gives now to a fresh anonymous mapping advised MADV_HUGEPAGE by
    hand and written once: what lossext's advice can get at best."""
    import ctypes
    import mmap
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        m.madvise(mmap.MADV_HUGEPAGE)
        m.write(b"\x01" * nbytes)
        c = ctypes.c_char.from_buffer(m)
        try:
            return _anon_huge_kb(ctypes.addressof(c), nbytes)
        finally:
            del c
    finally:
        m.close()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_gradients_match_torch(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8192, generator=g).to(dtype)  # 16 MiB in float32: advised
    t = torch.randint(0, 8192, (512,), generator=g)
    y = torch.rand(512, 8192, generator=g).to(dtype)
    for ours, ref, tgt in ((LF.cross_entropy, F.cross_entropy, t), (LF.mse_loss, F.mse_loss, y),
                           (LF.nll_loss, F.nll_loss, t)):
        for reduction in ("mean", "none"):
            a = x.clone().requires_grad_()
            b = x.double().requires_grad_()
            la, lb = ours(a, tgt, reduction=reduction), ref(b, tgt.double() if tgt.is_floating_point() else tgt,
                                                             reduction=reduction)
            assert_close(la, lb, dtype, f"{ours.__name__} {reduction}")
            go = torch.rand(la.shape, generator=g).to(dtype)
            (ga,), (gb,) = torch.autograd.grad(la, a, go), torch.autograd.grad(lb, b, go.double())
            assert_close(ga, gb, dtype, f"{ours.__name__} {reduction} grad")


@pytest.mark.skipif(not sys.platform.startswith("linux") or _thp_mode() == "never"
                    or os.environ.get("LOSSEXT_HUGE_PAGES") == "0", reason="transparent huge pages are off")
def test_fresh_gradient_uses_huge_pages():
    x = torch.randn(64 << 20 >> 2, requires_grad=True)  # 64 MiB
    y = torch.randn(x.shape)
    LF.mse_loss(x, y).backward()
    grad = x.grad
    got = _anon_huge_kb(grad.data_ptr(), grad.nbytes)
    if got < 2048 and _control_huge_kb(grad.nbytes) < 2048:
        # The kernel gave none to a buffer advised by hand either (memory fragmented by other
        # processes, defrag off): nothing lossext could have done; CI's busy machines do this.
        pytest.skip("the kernel has no huge page to give right now (an advised control buffer got none)")
    assert got >= 2048, "the fresh 64 MiB gradient got no huge page (an advised control buffer did)"


def test_opt_out_gives_the_same_bits():
    code = (
        "import torch, lossext.functional as LF\n"
        "g = torch.Generator().manual_seed(1)\n"
        "x = torch.randn(256, 16384, generator=g, requires_grad=True); t = torch.randint(0, 16384, (256,), generator=g)\n"
        "LF.cross_entropy(x, t).backward()\n"
        "print(float(x.grad.double().abs().sum()), float(x.grad[3, :100].double().sum()))\n"
    )
    outs = []
    for flag in ("1", "0"):
        env = dict(os.environ, LOSSEXT_HUGE_PAGES=flag)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
