"""The table of lossext ops: one row per loss (see _registry.py for what a row derives)."""
from ._registry import LossSpec, register_all

SPECS = [
    LossSpec("binary_cross_entropy_with_logits", diff=("input", "target"),
             operands=("input", "target", "weight", "pos_weight")),
]


# ---- row-wise losses (class dim 1): cross_entropy, nll_loss -------------------------------------
import torch  # noqa: E402
def _rowwise_dtype(a):
    x, t, w = a["input"], a["target"], a.get("weight")
    if x.shape != t.shape or not t.is_floating_point():  # class-index targets: the input's dtype
        return x.dtype
    dt = torch.promote_types(x.dtype, t.dtype)  # probability targets promote (as torch's math)
    return dt if w is None else torch.promote_types(dt, w.dtype)


def _rowwise_samples(a, dtype):
    x = a["input"]
    shape = x.shape[1:] if x.dim() == 1 else (x.shape[0], *x.shape[2:])
    return x.new_empty(shape, dtype=dtype)


def _rowwise_none_loss(a):
    return _rowwise_samples(a, _rowwise_dtype(a))


def _cross_entropy_aux(a):
    dt = _rowwise_dtype(a)
    return [_rowwise_samples(a, torch.float32 if dt in (torch.float16, torch.bfloat16) else dt)]  # lse


SPECS += [
    LossSpec("cross_entropy", diff=("input", "target"), none_loss=_rowwise_none_loss, aux=_cross_entropy_aux,
             operands=("input", "target", "weight"), cpp_autograd=True),
    LossSpec("nll_loss", diff=("input",), none_loss=_rowwise_none_loss, operands=("input", "target", "weight"),
             cpp_autograd=True),
]


# The opt-in in-place gradient pair (lossext.functional.cross_entropy(inplace_backward=True)).
@torch.library.register_fake("lossext::cross_entropy_inplace")
def _cross_entropy_inplace_fake(input, target, weight, reduction, ignore_index, label_smoothing):
    a = {"input": input, "target": target, "weight": weight}
    return _rowwise_none_loss(a) if reduction == 0 else input.new_empty((), dtype=_rowwise_dtype(a))


@torch.library.register_fake("lossext::cross_entropy_inplace_backward")
def _cross_entropy_inplace_backward_fake(grad, grad_output, reduction):
    return None


register_all(SPECS)
