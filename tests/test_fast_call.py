"""The functionals' eager entry, lossext._C.call (csrc/module.cpp): the op through the dispatcher
with the loss only, falling back to torch.ops where Python has to see the call (__torch_function__
subclasses and modes, unexpected argument types). Its results are the op's: every other test goes
through it; these check the fallbacks and the C++ default grad_mask."""
import threading

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import lossext.functional as LF
from lossext import _C

OP = torch.ops.lossext.mse_loss.default


def _handle(name, diff):
    op = getattr(torch.ops.lossext, name).default
    return _C.op_handle(name, [i for i, a in enumerate(op._schema.arguments) if a.name in diff])


class Logged(torch.Tensor):
    """A subclass whose __torch_function__ records what it sees."""
    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


def test_plain_tensors_take_the_fast_entry_and_match_the_op():
    h = _handle("mse_loss", ("input", "target", "weight"))
    x, y = torch.randn(5, 3, requires_grad=True), torch.randn(5, 3)
    fast = _C.call(h, x, y, None, 1, None)
    assert isinstance(fast, torch.Tensor) and fast.grad_fn is not None
    ref = OP(x, y, None, 1, [True, False, False])[0]
    torch.testing.assert_close(fast, ref, rtol=0, atol=0)
    (gf,) = torch.autograd.grad(fast, x)
    (gr,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(gf, gr, rtol=0, atol=0)
    torch.testing.assert_close(gf, torch.autograd.grad(F.mse_loss(x, y), x)[0])


@pytest.mark.parametrize("bad", [
    lambda x, y: (x, y, None, 1.0, None),          # a float for the int reduction
    lambda x, y: (x, y, None, True, None),         # a bool for an int
    lambda x, y: (x, y.tolist(), None, 1, None),   # a list for a tensor
    lambda x, y: (x, y, None, 1, [1, 0, 0]),       # ints for bools
    lambda x, y: (x, y, None, 1, (True, False, False)),  # a tuple for the list
    lambda x, y: (x, y, None, 1),                  # an argument short
])
def test_unexpected_arguments_fall_back(bad):
    h = _handle("mse_loss", ("input", "target", "weight"))
    x, y = torch.randn(4), torch.randn(4)
    assert _C.call(h, *bad(x, y)) is NotImplemented


def test_default_grad_mask_follows_requires_grad_and_grad_mode():
    h = _handle("l1_loss", ("input", "target", "weight"))
    x, y = torch.randn(6, requires_grad=True), torch.randn(6, requires_grad=True)
    loss = _C.call(h, x, y, None, 2, None)
    gx, gy = torch.autograd.grad(loss, (x, y))
    torch.testing.assert_close(gx, torch.sign(x - y).detach())
    torch.testing.assert_close(gy, -torch.sign(x - y).detach())
    with torch.no_grad():
        assert _C.call(h, x, y, None, 2, None).grad_fn is None
    # Only the target requires grad: the input's gradient is not asked for.
    loss = _C.call(h, x.detach(), y, None, 2, None)
    (gy,) = torch.autograd.grad(loss, (y,))
    torch.testing.assert_close(gy, -torch.sign(x - y).detach())


def test_torch_function_subclass_sees_the_op():
    Logged.seen.clear()
    x = torch.randn(4, 3).as_subclass(Logged).requires_grad_()
    t = torch.randint(0, 3, (4,))
    LF.cross_entropy(x, t).backward()
    assert torch.ops.lossext.cross_entropy.default in Logged.seen
    xr = x.detach().as_subclass(torch.Tensor).requires_grad_()
    F.cross_entropy(xr, t).backward()
    torch.testing.assert_close(x.grad.as_subclass(torch.Tensor), xr.grad)


def test_torch_function_mode_sees_the_op():
    seen = []

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    x, y = torch.randn(5, requires_grad=True), torch.randn(5)
    with Mode():
        out = LF.smooth_l1_loss(x, y)
    assert torch.ops.lossext.smooth_l1_loss.default in seen
    torch.testing.assert_close(out, F.smooth_l1_loss(x, y))


def test_errors_keep_torchs_types_through_the_fast_entry():
    with pytest.raises(IndexError):
        LF.nll_loss(torch.randn(3, 4).log_softmax(1), torch.tensor([0, 4, 1]))
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        LF.multi_margin_loss(torch.randn(3, 4, requires_grad=True), torch.tensor([0, 1, 2]),
                             weight=torch.ones(4, requires_grad=True))
    with pytest.raises(NotImplementedError):
        LF.mse_loss(torch.ones(3, dtype=torch.int32), torch.ones(3, dtype=torch.int32))


def test_large_calls_from_threads():
    # Large calls release the GIL around the kernel: several threads at once give each their value.
    x, y = torch.randn(1 << 18), torch.randn(1 << 18)
    ref = F.mse_loss(x, y)
    out, errors = [None] * 4, []

    def work(i):
        try:
            out[i] = LF.mse_loss(x, y)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for o in out:
        torch.testing.assert_close(o, ref)
