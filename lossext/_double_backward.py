"""lossext has no double backward: make a second derivative through a loss raise, never silently
give a wrong one (used by the autograd formulas of _registry.py)."""
from __future__ import annotations

import torch


def _nested_grad_levels() -> bool:
    """Under torch.func: whether two differentiating transforms (grad, vjp/jacrev, jvp) enclose this
    call, i.e. a second derivative of it will be taken (grad of grad, jacrev of jacrev)."""
    if not torch._C._are_functorch_transforms_active():
        return False
    from torch._C._functorch import TransformType
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters
    keys = [i.key() for i in retrieve_all_functorch_interpreters()]
    return sum(k in (TransformType.Grad, TransformType.Jvp) for k in keys) > 1


def _no_double_backward(name: str, result: list, nested: bool = False) -> list:
    """Under create_graph=True the gradients a lossext backward returns get a node that raises when
    it is differentiated (as torch's once_differentiable): lossext's backward ops have no
    derivative of their own, and a gradient that merely looked constant to autograd would give a
    silently wrong second derivative."""
    live = [g for g in result if g is not None]
    if not torch.is_grad_enabled() or not live:
        return result
    msg = (f"lossext: double backward of {name} is not supported (a second derivative through a lossext "
           "loss, e.g. create_graph=True followed by a backward of the gradient)")
    if torch._C._are_functorch_transforms_active():
        # torch.func runs every backward with create_graph, and its tensors cannot be given a raising
        # node; nesting was recorded by save() (see _nested_grad_levels).
        if nested:
            raise RuntimeError(msg)
        return result
    err = torch._C._functions.DelayedError(msg.encode(), len(live))
    out = err(*[g.detach().requires_grad_() for g in live])
    wrapped = iter((out,) if isinstance(out, torch.Tensor) else out)
    return [None if g is None else next(wrapped) for g in result]
