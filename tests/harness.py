"""Shared test machinery: devices, dtypes, tolerances, and the compare-against-torch driver.

Every loss test feeds random inputs to lossext and to torch (the reference, in float64 on upcast
copies of the same values) and compares the values and the gradients of every differentiable
argument. A test that cannot fail is a defect: inputs are random, gradients use a random
grad_output, and every comparison has a bound.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable, Sequence

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")]),
]

FLOAT_DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
REDUCTIONS = ["none", "mean", "sum"]

# (rtol, atol relative to the reference's max magnitude) for values computed in each dtype.
TOL = {
    torch.float64: 1e-10,
    torch.float32: 2e-5,
    torch.float16: 4e-3,
    torch.bfloat16: 3e-2,
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "") -> None:
    """max|a - e| <= tol * (1 + max|e|), NaN where and only where the reference has NaN."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a = actual.detach().double().cpu()
    e = expected.detach().double().cpu()
    nan_a, nan_e = a.isnan(), e.isnan()
    assert torch.equal(nan_a, nan_e), f"{what}: NaN pattern differs ({int(nan_a.sum())} vs {int(nan_e.sum())})"
    a, e = a[~nan_e], e[~nan_e]
    if a.numel() == 0:
        return
    inf_e = e.isinf()
    assert torch.equal(a[inf_e], e[inf_e]), f"{what}: infinities differ"
    a, e = a[~inf_e], e[~inf_e]
    if a.numel() == 0:
        return
    tol = TOL[dtype]
    err = (a - e).abs().max().item()
    bound = tol * (1.0 + e.abs().max().item())
    assert err <= bound, f"{what}: max abs error {err:.3e} > {bound:.3e} ({dtype})"


def _upcast(v):
    if isinstance(v, torch.Tensor) and v.is_floating_point():
        return v.detach().double()
    return v


def check_loss(
    ours: Callable,
    ref: Callable,
    args: Sequence,
    kwargs: dict | None = None,
    diff: Sequence[int] = (0,),
    dtype: torch.dtype | None = None,
    grad_output: str = "random",
    check_dtype: bool = True,
) -> torch.Tensor:
    """Compares ours(*args, **kwargs) with ref (torch) on float64 copies: value and the gradient of
    each args[i] for i in diff. Returns our loss."""
    kwargs = dict(kwargs or {})
    dtype = dtype or next(a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point())
    leaves = [a.detach().clone().requires_grad_(i in diff) if isinstance(a, torch.Tensor) and a.is_floating_point()
              else a for i, a in enumerate(args)]
    ref_leaves = [_upcast(a).requires_grad_(i in diff) if isinstance(a, torch.Tensor) and a.is_floating_point()
                  else a for i, a in enumerate(args)]
    ref_kwargs = {k: _upcast(v) for k, v in kwargs.items()}
    out = ours(*leaves, **kwargs)
    expected = ref(*ref_leaves, **ref_kwargs)
    if check_dtype:
        try:
            torch_dtype = ref(*[a.detach() if isinstance(a, torch.Tensor) else a for a in args], **kwargs).dtype
        except (RuntimeError, NotImplementedError):  # torch lacks a kernel for this dtype/device
            torch_dtype = None
        if torch_dtype is not None:
            assert out.dtype == torch_dtype, f"dtype {out.dtype} != torch's {torch_dtype}"
    assert_close(out, expected, dtype, "loss")
    if diff:
        g = torch.randn(out.shape, dtype=torch.float64) if grad_output == "random" else torch.ones(out.shape, dtype=torch.float64)
        g = g.to(out.dtype).double()  # the reference sees the same (rounded) grad_output values
        ins = [leaves[i] for i in diff]
        ref_ins = [ref_leaves[i] for i in diff]
        grads = torch.autograd.grad(out, ins, g.to(out.dtype).to(out.device), allow_unused=True)
        ref_grads = torch.autograd.grad(expected, ref_ins, g.to(expected.device), allow_unused=True)
        for i, ga, ge in zip(diff, grads, ref_grads):
            if ge is None:
                ge = torch.zeros_like(ref_leaves[i])
            assert ga is not None, f"no gradient for argument {i}"
            assert ga.dtype == leaves[i].dtype, f"grad {i}: dtype {ga.dtype} != {leaves[i].dtype}"
            assert_close(ga, ge, dtype, f"grad of argument {i}")
    return out


def opcheck(op, args, kwargs=None):
    torch.library.opcheck(op, args, kwargs or {})


def run_isa(code: str, isa: str) -> str:
    """Runs python `code` in a subprocess with ATEN_CPU_CAPABILITY=isa; returns stdout."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=isa)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"ATEN_CPU_CAPABILITY={isa}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def run_every_isa(code: str) -> None:
    """Runs `code` (which must end by printing lossext.cpu_isa()) once per CPU kernel copy that was
    built and that this processor can run, and checks that each run used the copy it asked for."""
    import lossext

    ran = 0
    for isa in lossext.built_isas():
        if isa == "AVX512" and lossext.cpu_isa() != "AVX512":
            continue  # this processor cannot run it
        if isa == "AVX2" and lossext.cpu_isa() == "DEFAULT":
            continue
        assert run_isa(code, isa.lower()).strip() == isa
        ran += 1
    assert ran >= 1
