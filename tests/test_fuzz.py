"""Seeded differential fuzz test of every loss against torch (issue 8).

Each case draws a loss, a shape (0- and 1-sized dimensions included), a layout (contiguous,
transposed, expanded, sliced, channels-last), a dtype, the options and the values (extremes: ±1e4,
±inf, NaN, exact 0/1 probabilities), sometimes a bad argument, and compares with torch: the
exception type when either raises, else the result's dtype and shape, the value and the gradient
of every argument both libraries differentiate. A value or gradient passes when it is close to
torch's in the same dtype or to torch's on float64 copies (lossext computes half types in float,
and uses stable forms where torch overflows). Documented deviations (README) are listed in
DEVIATIONS and skipped by an explicit predicate; everything else fails with the case's seed.
The focal losses, which torch lacks, are compared with the composites of fuzz_cases.REFERENCES
(torchvision's formula; the softmax form over log_softmax) the same way.

LOSSEXT_FUZZ_CASES=N runs N cases per loss (default 500: 10-40 s in all on 2 cores, depending on load);
LOSSEXT_FUZZ_SEED changes the seed; LOSSEXT_FUZZ_SHOW_DEVIATIONS=1 (with -s) prints every case
a documented deviation excused.
"""
import os
import random
import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
from fuzz_cases import DEVIATIONS, GENERATORS, REFERENCES, Case

N_CASES = int(os.environ.get("LOSSEXT_FUZZ_CASES", "500"))
SEED = int(os.environ.get("LOSSEXT_FUZZ_SEED", "0"))
SHOW = os.environ.get("LOSSEXT_FUZZ_SHOW_DEVIATIONS") == "1"  # print the cases a deviation excused (-s)

TOL = {torch.float64: 1e-7, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 6e-2}


def _run(f, case: Case, upcast: bool):
    """(loss, grads by name) or the exception's type; `upcast`: on float64 copies."""
    def prep(name, v):
        if not isinstance(v, torch.Tensor):
            return v
        v = v.detach()
        if upcast and v.is_floating_point():
            v = v.double()
        return v.clone().requires_grad_() if v.is_floating_point() and name in case.diff else v
    args = [prep(n, a) for n, a in zip(case.arg_names, case.args)]
    kwargs = {k: prep(k, v) for k, v in case.kwargs.items()}
    named = dict(zip(case.arg_names, args), **kwargs)
    leaves = [n for n in case.diff if isinstance(named.get(n), torch.Tensor) and named[n].is_floating_point()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            loss = f(*args, **kwargs)
            if not leaves or not loss.requires_grad:
                return loss.detach(), {}
            go = torch.full_like(loss, case.grad_output)
            grads = torch.autograd.grad(loss, [named[n] for n in leaves], go, allow_unused=True)
        except Exception as e:  # noqa: BLE001 - the type is compared with torch's
            return e
    return loss.detach(), dict(zip(leaves, grads))


def _close(a: torch.Tensor, e: torch.Tensor, dtype) -> bool:
    a, e = a.double(), e.double()
    if a.shape != e.shape or not torch.equal(a.isnan(), e.isnan()):
        return False
    a, e = a[~e.isnan()], e[~e.isnan()]
    inf = e.isinf()
    if not torch.equal(a[inf], e[inf]) or a[~inf].isinf().any():
        return False
    a, e = a[~inf], e[~inf]
    return a.numel() == 0 or (a - e).abs().max().item() <= TOL[dtype] * (1 + e.abs().max().item())


def _first_difference(a, e, e64) -> str:
    """Where a and the reference e differ most (NaN/inf mismatches first)."""
    if a.shape != e.shape:
        return f"shape {tuple(a.shape)} vs torch {tuple(e.shape)}"
    e64 = e64.double().flatten() if e64 is not None and e64.shape == a.shape else e.double().flatten()
    a, e = a.double().flatten(), e.double().flatten()
    bad = (a.isnan() != e.isnan()) | ((a.isinf() | e.isinf()) & (a != e))
    i = int(bad.nonzero()[0]) if bad.any() else int((a - e).nan_to_num(0, 0, 0).abs().argmax())
    return f"at {i}: lossext {a[i].item()!r}, torch {e[i].item()!r}, torch float64 {e64[i].item()!r}"


def _compare(case: Case):
    """None when lossext agrees with torch, else what differs."""
    reference = REFERENCES.get(case.name) or getattr(F, case.name)
    ref = _run(reference, case, upcast=False)
    got = _run(getattr(LF, case.name), case, upcast=False)
    if isinstance(ref, Exception) or isinstance(got, Exception):
        if type(ref) is type(got):
            return None
        def what(r):
            return f"{type(r).__name__} ({str(r).splitlines()[0][:100]})" if isinstance(r, Exception) else "computes"
        return f"exception: torch {what(ref)}, lossext {what(got)}"
    ref64 = _run(reference, case, upcast=True)
    (lr, gr), (lg, gg) = ref, got
    if lg.dtype != lr.dtype or lg.shape != lr.shape:
        return f"result: torch {lr.dtype} {tuple(lr.shape)}, lossext {lg.dtype} {tuple(lg.shape)}"
    # The tolerance of the least precise floating operand (a target may have another dtype).
    dts = [t.dtype for t in list(case.args) + list(case.kwargs.values())
           if isinstance(t, torch.Tensor) and t.dtype in TOL]
    dt = max(dts + [case.dtype], key=lambda d: TOL[d])
    alt = ref64 if not isinstance(ref64, Exception) else (lr, gr)
    # The float64 reference rounded to lossext's dtype: an overflow to inf of the result is right.
    alt = (alt[0].to(lg.dtype), {n: (None if g is None or n not in gg or gg[n] is None else g.to(gg[n].dtype))
                                 for n, g in alt[1].items()})
    if not (_close(lg, lr, dt) or _close(lg, alt[0], dt)):
        return f"value: {_first_difference(lg, lr, alt[0])}"
    for n, g in gg.items():
        r, r64 = gr.get(n), alt[1].get(n)
        if (g is None) != (r is None):
            return f"grad {n}: torch {'None' if r is None else 'a tensor'}, lossext {'None' if g is None else 'a tensor'}"
        if g is None:
            continue
        if g.dtype != r.dtype:
            return f"grad {n} dtype: torch {r.dtype}, lossext {g.dtype}"
        if not (_close(g, r, dt) or (r64 is not None and _close(g, r64, dt))):
            return f"grad {n}: {_first_difference(g, r, r64)}"
    return None


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_fuzz_against_torch(name):
    failures, deviations = [], 0
    for i in range(N_CASES):
        rng = random.Random(f"{SEED}:{name}:{i}")
        case = GENERATORS[name](rng)
        why = _compare(case)
        if why is None:
            continue
        hit = next((d for d in DEVIATIONS if d.applies(case, why)), None)
        if hit is not None:
            deviations += 1
            if SHOW:
                print(f"deviation, case {i} ({case.describe()}): {why}\n    -> {hit.reason}")
            continue
        failures.append(f"case {i} ({case.describe()}): {why}")
    assert not failures, f"{len(failures)} of {N_CASES} cases differ from torch (seed {SEED}):\n" + "\n".join(failures[:10])


def test_deviation_list_is_explicit():
    """Every deviation names the README item or issue that documents it."""
    for d in DEVIATIONS:
        assert d.reason and d.losses, d
