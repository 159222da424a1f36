"""The table of lossext ops: one row per loss (see _registry.py for what a row derives)."""
import torch

from ._registry import LossSpec, _promoted, register_all


def _pair_loss_dtype(loss_in_input_dtype: bool, mean_over_weight_sum: bool):
    """The loss dtype of l1/mse/huber/smooth_l1/soft_margin (csrc/include/lossext/pair_loss_host.h):
    promoted (or the input's), then promoted with the weight as torch's `loss * weight` does."""
    def dtype(a):
        x, t, w = a["input"], a["target"], a.get("weight")
        dt = x.dtype if loss_in_input_dtype else torch.promote_types(x.dtype, t.dtype)
        dt = dt.to_real()  # complex l1: |x - t| is real
        if w is not None:
            scalar_loss = len(torch.broadcast_shapes(x.shape, t.shape)) == 0
            if w.dim() > 0 or scalar_loss or (mean_over_weight_sum and a["reduction"] == 1):
                dt = torch.promote_types(dt, w.dtype)
        return dt if dt.is_floating_point else torch.get_default_dtype()  # integer operands (as the host)
    return dtype


def _gaussian_var_view(a):
    """var lacking input's last dimension is unsqueezed (as the host op does) before broadcasting."""
    x, v = a["input"], a["var"]
    if isinstance(v, torch.Tensor) and v.shape != x.shape and x.dim() >= 1 and v.shape == x.shape[:-1]:
        a = dict(a, var=v.unsqueeze(-1))
    return a


def _multilabel_none_loss(a):
    x = a["input"]
    return x.new_empty(x.shape[:-1], dtype=_promoted([x, a["target"], a["weight"]]))


# ---- row-wise losses (class dim 1): the per-sample shape and dtype --------------------------------
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
    """The forward's saved row statistics: (m, log z) per sample, plus Sy for probability targets
    (csrc/losses/cross_entropy.h), in the math dtype."""
    dt = _rowwise_dtype(a)
    samples = _rowwise_samples(a, torch.float32 if dt in (torch.float16, torch.bfloat16) else dt)
    prob = a["input"].shape == a["target"].shape
    return [samples.new_empty((*samples.shape, 3 if prob else 2))]


# ---- embedding losses (the feature dim last; csrc/include/lossext/embedding_host.h) -------------
def _embedding_samples(a, names, value=None, dtype=None):
    """The batch shape the operands (and a per-sample value target) broadcast to."""
    ts = [a[n] for n in names]
    shapes = [t.shape[:-1] if t.dim() > 0 else () for t in ts]
    if value is not None:
        shapes.append(a[value].shape)
    return ts[0].new_empty(torch.broadcast_shapes(*shapes), dtype=dtype or _promoted(ts))


def _math_dtype(dt):
    return torch.float32 if dt in (torch.float16, torch.bfloat16) else dt


# ---- multi_margin_loss: (C) / (N, C) input, (N) or 0-d target --------------------------------------
def _multi_margin_none_loss(a):
    return a["input"].new_empty(a["target"].shape)  # torch: the target's shape, the input's dtype


def _multi_margin_aux(a):
    """The forward's saved statistic: sum_{c != t} h'(z_c) per sample (csrc/losses/multi_margin_loss.h)."""
    x = a["input"]
    return [x.new_empty((x.shape[0] if x.dim() == 2 else 1, 1), dtype=_math_dtype(x.dtype))]


# ---- multilabel_margin_loss: (C) / (N, C) input, target of the input's shape -----------------------
def _multilabel_margin_none_loss(a):
    x = a["input"]
    return x.new_empty(x.shape[:1] if x.dim() == 2 else ())


def _multilabel_margin_aux(a):
    """The forward's is-target buffer (input-shaped, contiguous, the input's dtype), as torch's."""
    return [a["input"].new_empty(a["input"].shape)]
_COSINE = ("input1", "input2")


def _cosine_dtype(a):
    """torch's: integer operands count as the default float dtype (|x|^2 + EPSILON), then promoted."""
    dt = _promoted([a[n] for n in _COSINE])
    for n in _COSINE:
        if not a[n].is_floating_point():
            dt = torch.promote_types(dt, torch.get_default_dtype())
    return dt


def _cosine_none_loss(a):
    return _embedding_samples(a, _COSINE, "target", _cosine_dtype(a))


def _cosine_aux(a):
    """The forward's saved (|x1|^2, |x2|^2, x1.x2) per sample, in the math dtype."""
    s = _embedding_samples(a, _COSINE, "target", _cosine_dtype(a))
    return [s.new_empty((*s.shape, 3), dtype=_math_dtype(s.dtype))]


_TRIPLET = ("anchor", "positive", "negative")


def _triplet_none_loss(a):
    return _embedding_samples(a, _TRIPLET)


def _triplet_aux(a):
    """The forward's saved statistics of the three distances per sample (6 for p = +-inf), in the
    math dtype (csrc/losses/triplet_margin_loss.h)."""
    s = _embedding_samples(a, _TRIPLET)
    return [s.new_empty((*s.shape, 6 if abs(a["p"]) == float("inf") else 3), dtype=_math_dtype(s.dtype))]


# ---- linear_cross_entropy: input (..., H), linear_weight (C, d1..dk, H) ----------------------------
def _lce_tokens(a):
    x, w = a["input"], a["linear_weight"]
    n = 1
    for s in x.shape[:-1]:
        n *= s
    return n, w.shape[1:-1]


def _lce_none_loss(a):
    x = a["input"]
    n, out = _lce_tokens(a)
    shape = () if x.dim() == 1 else ((n, *out) if x.dim() == 2 else x.shape[:-1])
    return x.new_empty(shape)


def _lce_aux(a):
    """Per token and position (m, log z[, Sy]) in the math dtype (csrc/ops/linear_cross_entropy.cpp)."""
    x, w, t = a["input"], a["linear_weight"], a["target"]
    n, out = _lce_tokens(a)
    prob = tuple(t.shape) == (*x.shape[:-1], *w.shape[:-1])
    s = 1
    for d in out:
        s *= d
    return [x.new_empty((n * s, 3 if prob else 2), dtype=_math_dtype(x.dtype))]


@torch.library.register_fake("lossext::linear_cross_entropy_stats")
def _lce_stats_fake(saved, target, weight, reduction, ignore_index, z_loss):
    n = saved.shape[0]
    return saved.new_empty((n,)), saved.new_empty((n,) if reduction == 0 else ())


def _sigmoid_focal_index_loss(a):
    """sigmoid_focal_loss with class-index targets: elementwise, of the input's shape."""
    return torch.empty_like(a["input"], dtype=_promoted([a["input"], a["weight"]]))


def _focal_aux(a):
    """focal_loss's saved (m, log z[, Sk when smoothed]) per sample (csrc/losses/focal_loss.h), in the math dtype."""
    s = _rowwise_samples(a, _math_dtype(a["input"].dtype))
    return [s.new_empty((*s.shape, 3 if a["label_smoothing"] > 0 else 2))]


# ---- ctc_loss: (T, N, C) / unbatched (T, C) log_probs (csrc/ops/ctc_loss.cpp) -------------------
def _ctc_none_loss(a):
    x = a["log_probs"]
    return x.new_empty((x.shape[1],) if x.dim() == 3 else ())


def _ctc_aux(a):
    """d loss_n / d log_probs in the math dtype, where the forward does not write the scaled gradient
    (reduction none, or float16) and a gradient is asked for."""
    x = a["log_probs"]
    keep = a["grad_mask"][0] and (a["reduction"] == 0 or x.dtype == torch.float16)
    return [x.new_empty(x.shape if keep else (0,), dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)]


SPECS = [
    LossSpec("binary_cross_entropy_with_logits", diff=("input", "target"),
             operands=("input", "target", "weight", "pos_weight"),
             loss_dtype=lambda a: a["target"].dtype),  # torch's loss is written into the target's dtype
    LossSpec("l1_loss", diff=("input", "target", "weight"), operands=("input", "target", "weight"),
             loss_dtype=_pair_loss_dtype(False, True)),
    LossSpec("mse_loss", diff=("input", "target", "weight"), operands=("input", "target", "weight"),
             loss_dtype=_pair_loss_dtype(False, True)),
    LossSpec("huber_loss", diff=("input", "target", "weight"), operands=("input", "target", "weight"),
             loss_dtype=_pair_loss_dtype(True, False)),
    LossSpec("smooth_l1_loss", diff=("input", "target"), operands=("input", "target")),
    LossSpec("soft_margin_loss", diff=("input", "target"), operands=("input", "target"),
             loss_dtype=_pair_loss_dtype(True, False)),
    LossSpec("binary_cross_entropy", diff=("input", "target"), operands=("input",), autocast=("fp32", "banned")),
    # torch's CPU composite stays in the input dtype; on CUDA its sum is fp32.
    LossSpec("multilabel_soft_margin_loss", diff=("input", "target"), operands=("input", "target", "weight"),
             none_loss=_multilabel_none_loss, autocast=(None, "fp32")),
    LossSpec("poisson_nll_loss", diff=("input", "target")),
    LossSpec("gaussian_nll_loss", diff=("input", "target", "var"), operands=("input", "target", "var"),
             views=_gaussian_var_view, autocast=(None, "fp32")),  # as multilabel_soft_margin_loss
    LossSpec("kl_div", diff=("input", "target")),
    LossSpec("cross_entropy", diff=("input", "target"), none_loss=_rowwise_none_loss, aux=_cross_entropy_aux,
             operands=("input", "target", "weight")),
    LossSpec("nll_loss", diff=("input",), none_loss=_rowwise_none_loss, operands=("input", "target", "weight")),
    LossSpec("multi_margin_loss", diff=("input",), none_loss=_multi_margin_none_loss, aux=_multi_margin_aux,
             operands=("input", "target", "weight"), loss_dtype=lambda a: a["input"].dtype),
    LossSpec("multilabel_margin_loss", diff=("input",), none_loss=_multilabel_margin_none_loss,
             aux=_multilabel_margin_aux, operands=("input", "target"), loss_dtype=lambda a: a["input"].dtype),
    LossSpec("margin_ranking_loss", diff=("input1", "input2", "target"), operands=("input1", "input2", "target")),
    LossSpec("cosine_embedding_loss", diff=_COSINE, operands=_COSINE, none_loss=_cosine_none_loss,
             aux=_cosine_aux, loss_dtype=_cosine_dtype),
    LossSpec("triplet_margin_loss", diff=_TRIPLET, operands=_TRIPLET, none_loss=_triplet_none_loss,
             aux=_triplet_aux),
    # The margin on a user distance function's outputs (dist_swap None without swap).
    LossSpec("triplet_margin_with_distance_loss", diff=("dist_pos", "dist_neg", "dist_swap"),
             operands=("dist_pos", "dist_neg", "dist_swap")),
    LossSpec("linear_cross_entropy", diff=("input", "linear_weight", "linear_bias"), none_loss=_lce_none_loss,
             aux=_lce_aux, operands=("input",), autocast=(None, None)),
    LossSpec("hinge_embedding_loss", diff=("input",), operands=("input", "target"), loss_dtype=lambda a: a["input"].dtype),
    LossSpec("sigmoid_focal_loss", diff=("input", "target"), operands=("input", "target", "weight")),
    LossSpec("sigmoid_focal_loss_index", diff=("input",), none_loss=_sigmoid_focal_index_loss,
             operands=("input", "weight"), loss_dtype=lambda a: _promoted([a["input"], a["weight"]])),
    LossSpec("focal_loss", diff=("input",), none_loss=_rowwise_none_loss, aux=_focal_aux,
             operands=("input", "target", "weight")),
]

SPECS.append(LossSpec("ctc_loss", diff=("log_probs",), none_loss=_ctc_none_loss, aux=_ctc_aux,
                      operands=("log_probs",)))


# The opt-in in-place gradient pair (lossext.functional.cross_entropy(inplace_backward=True)).
@torch.library.register_fake("lossext::cross_entropy_inplace")
def _cross_entropy_inplace_fake(input, target, weight, reduction, ignore_index, label_smoothing):
    a = {"input": input, "target": target, "weight": weight}
    return _rowwise_none_loss(a) if reduction == 0 else input.new_empty((), dtype=_rowwise_dtype(a))


@torch.library.register_fake("lossext::cross_entropy_inplace_backward")
def _cross_entropy_inplace_backward_fake(grad, grad_output, reduction):
    return None


register_all(SPECS)
