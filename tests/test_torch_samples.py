"""PyTorch's own test inputs for every lossext loss: the OpInfo samples and error inputs of
torch.testing._internal.common_methods_invocations (op_db), compared with torch.nn.functional:
values in float64 and float32, the input's gradient in float64, and the exception type of every
error input."""
import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF

expecttest = pytest.importorskip("expecttest")  # torch's internal test modules need it (requirements-dev)
from torch.testing._internal.common_methods_invocations import op_db  # noqa: E402

OPS = {o.name[len("nn.functional."):]: o for o in op_db
       if o.name.startswith("nn.functional.") and o.name[len("nn.functional."):] in LF.__all__}


# Losses torch.nn.functional does not have (their references live in their own test files).
NOT_IN_TORCH = {"sigmoid_focal_loss", "focal_loss"}  # tests/test_focal_loss.py


def test_every_lossext_loss_has_opinfo_samples():
    missing = sorted(set(LF.__all__) - set(OPS) - NOT_IN_TORCH)
    assert not missing, f"no OpInfo for {missing}: add another source of torch's inputs"


def _call(fn, s, grad):
    def prep(v):
        if isinstance(v, torch.Tensor):
            v = v.detach().clone()
            return v.requires_grad_() if (grad and v is not None and v.is_floating_point()) else v
        return v
    x = prep(s.input)
    args = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in s.args]
    kwargs = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in s.kwargs.items()}
    out = fn(x, *args, **kwargs)
    if not grad:
        return out, None
    (g,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(OPS))
def test_opinfo_samples_match_torch(name, dtype):
    op = OPS[name]
    n = 0
    for s in op.sample_inputs("cpu", dtype, requires_grad=False):
        ref, _ = _call(getattr(F, name), s, False)
        got, _ = _call(getattr(LF, name), s, False)
        torch.testing.assert_close(got, ref, equal_nan=True, msg=lambda m: f"{name} {s}: {m}")
        if dtype == torch.float64 and s.input.is_floating_point() and ref.numel():
            _, gr = _call(getattr(F, name), s, True)
            _, gg = _call(getattr(LF, name), s, True)
            torch.testing.assert_close(gg, gr, equal_nan=True, msg=lambda m: f"{name} grad {s}: {m}")
        n += 1
    assert n, f"{name}: no samples"


@pytest.mark.parametrize("name", sorted(OPS))
def test_opinfo_error_inputs_raise_torchs_exception_type(name):
    op = OPS[name]
    if op.error_inputs_func is None:
        pytest.skip(f"torch's OpInfo for {name} has no error inputs")
    for e in op.error_inputs("cpu"):
        s = e.sample_input
        with pytest.raises(e.error_type):  # torch's own claim about itself
            getattr(F, name)(s.input, *s.args, **s.kwargs)
        with pytest.raises(e.error_type):
            getattr(LF, name)(s.input, *s.args, **s.kwargs)
