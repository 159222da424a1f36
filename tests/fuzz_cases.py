"""Case generators of tests/test_fuzz.py: one per loss (a new loss adds one), and the explicit list
of documented deviations from torch."""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Callable

import torch

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
REDUCTIONS = ["none", "mean", "sum"]
EXTREMES = [1e4, -1e4, math.inf, -math.inf, math.nan, 0.0]


@dataclass
class Case:
    name: str
    args: list
    kwargs: dict
    arg_names: tuple
    diff: tuple              # arguments whose gradients are compared (both libraries offer them)
    dtype: torch.dtype
    grad_output: float = 1.0
    notes: list = field(default_factory=list)  # what was drawn: layout, extremes, bad arguments

    def describe(self) -> str:
        shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in self.args]
        kw = {k: (f"{tuple(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor) else v) for k, v in self.kwargs.items()}
        return f"{self.name} {self.dtype} {shapes} {kw} go={self.grad_output} {' '.join(self.notes)}"


# ---- tensors -----------------------------------------------------------------------------------------
def shape(rng: random.Random, min_dim=0, max_dim=4):
    return tuple(rng.choice([0, 1, 1, 2, 3, 3, 5]) if rng.random() < 0.9 else rng.choice([1, 7])
                 for _ in range(rng.randint(min_dim, max_dim)))


def layout(rng: random.Random, values: Callable, shp, dtype, notes):
    """A tensor of shape `shp` with values from `values(shape)` (float64), in a random layout."""
    kind = rng.choice(["contiguous", "contiguous", "transposed", "expanded", "sliced", "channels_last"])
    if kind == "transposed" and len(shp) >= 2:
        t = values(shp[:-2] + (shp[-1], shp[-2])).transpose(-1, -2)
    elif kind == "expanded" and any(s > 1 for s in shp):
        d = rng.choice([i for i, s in enumerate(shp) if s > 1])
        t = values(shp[:d] + (1,) + shp[d + 1:]).expand(shp)
    elif kind == "sliced" and len(shp) >= 1:
        t = values(shp[:-1] + (2 * shp[-1],))[..., ::2]
    elif kind == "channels_last" and len(shp) == 4:
        t = values(shp).contiguous(memory_format=torch.channels_last)
    else:
        t, kind = values(shp), "contiguous"
    if kind != "contiguous":
        notes.append(kind)
    return t.to(dtype) if dtype.is_floating_point else t


def real(rng, scale=None, extremes=EXTREMES, p=0.15):
    """values(shape): normal * scale with some elements set to extremes."""
    scale = scale if scale is not None else rng.choice([1.0, 1.0, 3.0, 50.0])
    seed = rng.getrandbits(31)

    def values(shp):
        g = torch.Generator().manual_seed(seed)
        t = torch.randn(shp, generator=g, dtype=torch.float64) * scale
        if p and t.numel() and rng.random() < 0.3:
            m = torch.rand(shp, generator=g) < p
            t[m] = torch.tensor(extremes, dtype=torch.float64)[torch.randint(0, len(extremes), (int(m.sum()),), generator=g)]
        return t
    return values


def unit(rng, p=0.15):
    """values in [0, 1] with exact 0s and 1s."""
    base = real(rng, 1.0, [0.0, 1.0], p)
    return lambda shp: torch.sigmoid(base(shp) * 2)


def positive(rng, lo=1e-3, extremes=(0.0, 1e4, math.inf)):
    base = real(rng, 1.0, list(extremes), 0.1)
    return lambda shp: base(shp).abs() + lo


def weights(rng):
    return positive(rng, 0.0, (0.0, 1e4))  # an infinite weight only tests 0 * inf


def common(rng, name, arg_names, diff):
    dtype = rng.choice(DTYPES)
    return Case(name, [], {}, arg_names, diff, dtype, grad_output=rng.choice([1.0, 1.0, 0.5, -2.0, 0.0]))


def reduction(rng, case, choices=REDUCTIONS):
    case.kwargs["reduction"] = rng.choice(choices) if rng.random() < 0.97 else "avg"  # a bad one sometimes


def maybe_bad_dtype(rng, case, k=1):
    """Sometimes one operand's dtype is integer, bool or complex (one bad argument per case: which of
    two errors is reported first is not compared)."""
    if rng.random() < 0.08 and len(case.args) > k and case.kwargs.get("reduction") != "avg":
        bad = rng.choice([torch.int64, torch.bool, torch.complex64, torch.int32])
        t = case.args[k]
        case.args[k] = (t.real if t.is_complex() else t).round().to(bad) if bad != torch.bool else t > 0
        case.notes.append(f"arg{k}:{bad}")


def pair_inputs(rng, case, x_values, t_values, broadcast=True):
    shp = shape(rng)
    case.args.append(layout(rng, x_values, shp, case.dtype, case.notes))
    tshp = shp
    if broadcast and rng.random() < 0.15 and shp:
        tshp = tuple(1 if rng.random() < 0.5 else s for s in shp)[rng.randint(0, len(shp)):]  # a broadcast target
        case.notes.append("broadcast")
    tdt = case.dtype if rng.random() < 0.85 else rng.choice(DTYPES)
    case.args.append(layout(rng, t_values, tshp, tdt, case.notes))
    return shp


# ---- one generator per loss ----------------------------------------------------------------------------
def _pair(name, weight=False, extra=None):
    def gen(rng):
        case = common(rng, name, ("input", "target"), ("input", "target"))
        if name == "soft_margin_loss":  # torch: target not differentiable (README)
            case.diff = ("input",)
            shp = pair_inputs(rng, case, real(rng), lambda s: torch.randint(0, 2, s).double() * 2 - 1)
        else:
            shp = pair_inputs(rng, case, real(rng), real(rng))
        if rng.random() < 0.1:  # an integer target, promoted as torch
            case.args[1] = case.args[1].nan_to_num(0, 0, 0).clamp(-100, 100).round().to(torch.int64)
            case.notes.append("int target")
        reduction(rng, case)
        if weight and rng.random() < 0.4:
            case.kwargs["weight"] = layout(rng, weights(rng), shp, case.dtype, case.notes)
            case.diff = case.diff + ("weight",)
        if extra:
            extra(rng, case)
        maybe_bad_dtype(rng, case)
        return case
    return gen


def _bce_with_logits(rng):
    case = common(rng, "binary_cross_entropy_with_logits", ("input", "target"), ("input", "target"))
    shp = pair_inputs(rng, case, real(rng), unit(rng), broadcast=False)
    reduction(rng, case)
    for w in ("weight", "pos_weight"):
        if rng.random() < 0.3:
            wshp = shp[rng.randint(0, len(shp)):] if shp else ()
            case.kwargs[w] = layout(rng, weights(rng), wshp, case.dtype, case.notes)
    maybe_bad_dtype(rng, case)
    return case


def _bce(rng):
    case = common(rng, "binary_cross_entropy", ("input", "target"), ("input", "target"))
    shp = shape(rng)
    case.args.append(layout(rng, unit(rng), shp, case.dtype, case.notes))
    case.args.append(layout(rng, unit(rng), shp, case.dtype, case.notes))
    if rng.random() < 0.05:
        case.args[0] = case.args[0] * 2  # out of [0, 1]: torch raises on the CPU
        case.notes.append("out of range")
    reduction(rng, case)
    if rng.random() < 0.3:
        case.kwargs["weight"] = layout(rng, weights(rng), shp[rng.randint(0, len(shp)):] if shp else (),
                                       case.dtype, case.notes)
    maybe_bad_dtype(rng, case)
    return case


def _poisson(rng):
    case = common(rng, "poisson_nll_loss", ("input", "target"), ("input", "target"))
    log_input = rng.random() < 0.6
    pair_inputs(rng, case, real(rng) if log_input else positive(rng, 0.0), positive(rng, 0.0))
    case.kwargs.update(log_input=log_input, full=rng.random() < 0.3, eps=rng.choice([1e-8, 1e-3]))
    reduction(rng, case)
    return case


def _gaussian(rng):
    case = common(rng, "gaussian_nll_loss", ("input", "target", "var"), ("input", "target", "var"))
    shp = pair_inputs(rng, case, real(rng), real(rng), broadcast=False)
    kind = rng.choice(["full", "full", "last1", "nolast", "float"])
    if kind == "float":
        case.args.append(rng.choice([0.5, 1.0, 2.0]))
    else:
        vshp = shp if kind == "full" or not shp else (shp[:-1] + (1,) if kind == "last1" else shp[:-1])
        var = layout(rng, positive(rng), vshp, case.dtype, case.notes)
        if rng.random() < 0.05 and var.numel():
            var = var - 2 * var.flatten()[0]  # a negative entry: ValueError
        case.args.append(var)
    case.kwargs.update(full=rng.random() < 0.3, eps=rng.choice([1e-6, 1e-6, 0.0]))
    reduction(rng, case)
    return case


def _kl_div(rng):
    case = common(rng, "kl_div", ("input", "target"), ("input", "target"))
    log_target = rng.random() < 0.4
    pair_inputs(rng, case, real(rng), real(rng) if log_target else unit(rng))
    reduction(rng, case, REDUCTIONS + ["batchmean"])
    case.kwargs["log_target"] = log_target
    return case


def _multilabel(rng):
    case = common(rng, "multilabel_soft_margin_loss", ("input", "target"), ("input",))
    shp = shape(rng, 1, 2)
    case.args.append(layout(rng, real(rng), shp, case.dtype, case.notes))
    case.args.append(layout(rng, lambda s: (torch.rand(s) > 0.5).double(), shp, case.dtype, case.notes))
    reduction(rng, case)
    if rng.random() < 0.3:
        case.kwargs["weight"] = layout(rng, weights(rng), shp[-1:], case.dtype, case.notes)
    return case


def _rowwise(name):
    def gen(rng):
        case = common(rng, name, ("input", "target"), ("input",))
        n, c = rng.choice([0, 1, 2, 5]), rng.choice([1, 2, 5])
        k = tuple(rng.choice([1, 2, 3]) for _ in range(rng.choice([0, 0, 1, 2])))
        shp = (n, c) + k if rng.random() < 0.9 else (c,)
        x = layout(rng, real(rng), shp, case.dtype, case.notes)
        if rng.random() < 0.15:  # large logits: the precision of the softmax
            x = x + 1e4
            case.notes.append("logits+1e4")
        case.args.append(torch.log_softmax(x.double(), 1 if len(shp) > 1 else 0).to(case.dtype) if name == "nll_loss" else x)
        tshp = (shp[0],) + shp[2:] if len(shp) > 1 else ()
        if name == "cross_entropy" and rng.random() < 0.3:  # probabilities
            case.args.append(layout(rng, unit(rng, 0.0), shp, case.dtype, case.notes).softmax(1 if len(shp) > 1 else 0))
            case.diff = ("input", "target")
        else:
            case.args.append(torch.randint(0, c, tshp, generator=torch.Generator().manual_seed(rng.getrandbits(31))))
        if rng.random() < 0.3:
            wshp = (c, 1) if len(shp) >= 3 and rng.random() < 0.3 else (c,)  # torch accepts (C, 1) for 3+ dims
            case.kwargs["weight"] = layout(rng, weights(rng), wshp, case.dtype, case.notes)
            if wshp == (c, 1):
                case.notes.append("weight(C,1)")
        if rng.random() < 0.3:
            case.kwargs["ignore_index"] = rng.choice([0, -100, 1])
        if name == "cross_entropy" and rng.random() < 0.3:
            case.kwargs["label_smoothing"] = rng.choice([0.1, 0.5, 1.0])
        reduction(rng, case)
        return case
    return gen


def _multi_margin(rng):
    case = common(rng, "multi_margin_loss", ("input", "target"), ("input",))
    n, c = rng.choice([0, 1, 2, 5]), rng.choice([1, 2, 5, 17])
    shp = (n, c) if rng.random() < 0.85 else rng.choice([(c,), ()])
    case.args.append(layout(rng, real(rng), shp, case.dtype, case.notes))
    nframe, C = (shp[0] if len(shp) == 2 else 1), (shp[-1] if shp else 1)
    tshp = () if nframe == 1 and rng.random() < 0.4 else (nframe,)
    hi = C + 1 if rng.random() < 0.05 else C  # sometimes an out-of-range target
    case.args.append(torch.randint(0, hi, tshp, generator=torch.Generator().manual_seed(rng.getrandbits(31))))
    if rng.random() < 0.3:
        case.kwargs["weight"] = layout(rng, weights(rng), (C,), case.dtype, case.notes)
    case.kwargs["p"] = rng.choice([1, 2])
    case.kwargs["margin"] = rng.choice([1.0, 0.5, 0.0, -1.0, 2.0])
    reduction(rng, case)
    return case


def _multilabel_margin(rng):
    case = common(rng, "multilabel_margin_loss", ("input", "target"), ("input",))
    n, c = rng.choice([0, 1, 2, 5]), rng.choice([1, 2, 5, 17])
    shp = (n, c) if rng.random() < 0.85 else rng.choice([(c,), ()])
    case.args.append(layout(rng, real(rng), shp, case.dtype, case.notes))
    rows, C = (shp[0] if len(shp) == 2 else 1), (shp[-1] if shp else 1)
    g = torch.Generator().manual_seed(rng.getrandbits(31))
    t = torch.randint(-1, C + (1 if rng.random() < 0.05 else 0), (rows, C), generator=g)  # sometimes out of range
    for r in range(rows):  # a list of classes (duplicates possible), then -1, then anything in [-1, C)
        k = rng.randint(0, C)
        t[r, :k] = torch.randint(0, C, (k,), generator=g)
        if k < C:
            t[r, k] = -1
    if len(shp) == 2 and rng.random() < 0.2:
        t = t.t().contiguous().t()  # a column-major target
        case.notes.append("target column-major")
    case.args.append(t.reshape(shp))
    reduction(rng, case)
    return case


def _margin_ranking(rng):
    names = ("input1", "input2", "target")
    case = common(rng, "margin_ranking_loss", names, names)
    shp = shape(rng, 0, 3)
    for k, values in enumerate((real(rng), real(rng), lambda s: torch.randint(-1, 2, s).double())):
        # torch's functional wants equal ranks; sizes of 1 broadcast
        s = tuple(1 if d > 1 and rng.random() < 0.1 else d for d in shp) if k else shp
        case.args.append(layout(rng, values, s, case.dtype if rng.random() < 0.9 else rng.choice(DTYPES), case.notes))
    case.kwargs["margin"] = rng.choice([0.0, 0.5, 1.0, -1.0])
    reduction(rng, case)
    maybe_bad_dtype(rng, case, rng.randint(0, 2))
    return case


def _cosine_embedding(rng):
    names = ("input1", "input2", "target")
    case = common(rng, "cosine_embedding_loss", names, names[:2])
    n, d = rng.choice([0, 1, 3, 5]), rng.choice([0, 1, 2, 5, 17])
    unbatched = rng.random() < 0.15
    s1 = s2 = (d,) if unbatched else (n, d)
    if not unbatched and rng.random() < 0.15:  # a broadcast batch or feature dim
        s2 = rng.choice([(1, d), (n, 1)])
        case.notes.append("broadcast")
    case.args.append(layout(rng, real(rng), s1, case.dtype, case.notes))
    case.args.append(layout(rng, real(rng), s2, case.dtype, case.notes))
    pool = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0, 2.0], dtype=torch.float64)  # torch: neither term for 0, 2
    tdt = case.dtype if rng.random() < 0.8 else rng.choice(DTYPES + [torch.int64])
    case.args.append(pool[torch.randint(0, len(pool), () if unbatched else (n,))].to(tdt))
    case.kwargs["margin"] = rng.choice([0.0, 0.5, -0.5])
    reduction(rng, case)
    maybe_bad_dtype(rng, case, 0)
    return case


def _triplet(rng):
    names = ("anchor", "positive", "negative")
    case = common(rng, "triplet_margin_loss", names, names)
    shp = shape(rng, 1, 3)
    for k in range(3):
        s = tuple(1 if d > 1 and rng.random() < 0.1 else d for d in shp) if k else shp  # sizes of 1 broadcast
        if s != shp:
            case.notes.append("broadcast")
        case.args.append(layout(rng, real(rng), s, case.dtype, case.notes))
    case.kwargs.update(margin=rng.choice([1.0, 0.5, 2.0]), p=rng.choice([2.0, 2.0, 1.0, 3.0, 0.5, math.inf]),
                       eps=rng.choice([1e-6, 0.0]), swap=rng.random() < 0.4)
    reduction(rng, case)
    maybe_bad_dtype(rng, case, rng.randint(0, 2))
    return case


def _hinge(rng):
    case = common(rng, "hinge_embedding_loss", ("input", "target"), ("input",))
    pool = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0, 2.0], dtype=torch.float64)  # torch: != 1 and != -1 count twice
    pair_inputs(rng, case, real(rng), lambda s: pool[torch.randint(0, len(pool), s)])
    if rng.random() < 0.15:
        case.args[1] = case.args[1].nan_to_num(0, 0, 0).to(rng.choice([torch.int64, torch.int8, torch.bool]))
        case.notes.append("integral target")
    case.kwargs["margin"] = rng.choice([0.0, 0.5, 1.0, 2.0, -1.0])
    reduction(rng, case)
    return case


def _ctc(rng):
    """ctc_loss: valid labels only (torch reads and writes out of bounds on bad ones; lossext's checks
    are tested in a subprocess in test_ctc_loss.py), padded or concatenated targets, unbatched inputs,
    any blank, lengths as tensors or lists, impossible samples and empty targets/inputs."""
    case = common(rng, "ctc_loss", ("log_probs", "targets", "input_lengths", "target_lengths"), ("log_probs",))
    g = torch.Generator().manual_seed(rng.getrandbits(31))
    T, N, C, S = rng.randint(1, 8), rng.randint(1, 4), rng.randint(2, 6), rng.randint(0, 4)
    unbatched = N == 1 and rng.random() < 0.3
    blank = rng.randrange(C)
    labels = torch.tensor([c for c in range(C) if c != blank])
    lp = torch.randn(T, N, C, generator=g, dtype=torch.float64).log_softmax(2).to(case.dtype)
    tl = torch.randint(0, S + 1, (N,), generator=g)
    il = torch.randint(0, T + 1, (N,), generator=g)
    tg = labels[torch.randint(0, len(labels), (N, S), generator=g)]
    if rng.random() < 0.4:
        tg = torch.cat([tg[n, :int(tl[n])] for n in range(N)])
        case.notes.append("concatenated")
    if unbatched:
        lp = lp[:, 0]
    case.args += [lp, tg, il.tolist() if rng.random() < 0.3 else il, tl.tolist() if rng.random() < 0.3 else tl]
    case.kwargs.update(blank=blank, zero_infinity=rng.random() < 0.5)
    reduction(rng, case)
    return case


def _linear_ce(rng):
    """linear_cross_entropy within torch's accepted shapes: (H) or (N, H) input, a (C, H) or K-dim
    (C, d, H) head, class or probability targets, bias, class weight, ignore_index, smoothing."""
    case = common(rng, "linear_cross_entropy", ("input", "linear_weight", "target"),
                  ("input", "linear_weight", "linear_bias"))
    n, h, c = rng.choice([0, 1, 2, 5]), rng.choice([1, 3, 8]), rng.choice([1, 2, 5])
    k = (rng.choice([1, 2, 3]),) if rng.random() < 0.15 else ()
    unbatched = not k and rng.random() < 0.15
    case.args.append(layout(rng, real(rng), (h,) if unbatched else (n, h), case.dtype, case.notes))
    case.args.append(layout(rng, real(rng, rng.choice([0.3, 1.0])), (c, *k, h), case.dtype, case.notes))
    seed = torch.Generator().manual_seed(rng.getrandbits(31))
    if rng.random() < 0.25:  # probabilities over the class dimension
        shp = (c,) if unbatched else (n, c, *k)
        case.args.append(layout(rng, unit(rng, 0.0), shp, case.dtype, case.notes).softmax(0 if unbatched else 1))
        case.notes.append("prob")
    else:
        case.args.append(torch.randint(0, c, () if unbatched else (n, *k), generator=seed))
    if rng.random() < 0.4:
        case.kwargs["linear_bias"] = layout(rng, real(rng), (c, *k), case.dtype, case.notes)
    if rng.random() < 0.3:
        case.kwargs["weight"] = layout(rng, weights(rng), (c,), case.dtype, case.notes)
    if rng.random() < 0.3:
        case.kwargs["ignore_index"] = rng.choice([0, -100, 1])
    if rng.random() < 0.3:
        case.kwargs["label_smoothing"] = rng.choice([0.1, 0.5, 1.0])
    reduction(rng, case)
    if "prob" in case.notes and "ignore_index" in case.kwargs:  # already a bad argument: one per case
        case.kwargs["reduction"] = "mean"
    else:
        maybe_bad_dtype(rng, case, 1)
    return case


def _sigmoid_focal(rng):
    """sigmoid_focal_loss: float targets of the inputs' shape (probabilities or 0/1, differentiable)
    or class-index targets (class dim last; index C: background; ignore_index), alpha (< 0: off),
    gamma, a per-class weight, a normalizer (float or an integer count, as `num_pos`)."""
    case = common(rng, "sigmoid_focal_loss", ("inputs", "targets"), ("inputs", "targets"))
    shp = shape(rng, 1, 3)
    C = shp[-1]
    case.args.append(layout(rng, real(rng), shp, case.dtype, case.notes))
    seed = torch.Generator().manual_seed(rng.getrandbits(31))
    if rng.random() < 0.35:
        t = torch.randint(0, C + 1, shp[:-1], generator=seed)
        if rng.random() < 0.4 and t.numel():
            case.kwargs["ignore_index"] = rng.choice([-100, 0])
            t.view(-1)[::3] = case.kwargs["ignore_index"]
        case.args.append(t)
        case.diff = ("inputs",)
        case.notes.append("index")
    elif rng.random() < 0.5:
        case.args.append(layout(rng, lambda s: (torch.rand(s, generator=seed) < 0.3).double(), shp, case.dtype, case.notes))
    else:
        case.args.append(layout(rng, unit(rng), shp, case.dtype, case.notes))
    case.kwargs["alpha"] = rng.choice([0.25, 0.25, -1.0, 0.5, 1.0])
    case.kwargs["gamma"] = rng.choice([2.0, 2.0, 0.0, 0.5, 1.5, 5.0])
    if rng.random() < 0.3:
        case.kwargs["weight"] = layout(rng, weights(rng), (C,), case.dtype, case.notes)
    if rng.random() < 0.3:
        case.kwargs["normalizer"] = (torch.tensor(rng.choice([1, 3, 17])) if rng.random() < 0.5
                                     else torch.tensor(rng.choice([0.5, 4.0, 1e-3]), dtype=case.dtype))
    reduction(rng, case)
    return case


def _focal(rng):
    """focal_loss (softmax form) with cross_entropy's shapes and conventions: (C), (N, C) or
    (N, C, d1..dk), class indices, ignore_index, class weights, alpha None / float / per class,
    gamma, label smoothing."""
    case = common(rng, "focal_loss", ("input", "target"), ("input",))
    n, c = rng.choice([0, 1, 2, 5]), rng.choice([1, 2, 5, 19])
    k = tuple(rng.choice([1, 2, 3]) for _ in range(rng.choice([0, 0, 1, 2])))
    shp = (n, c) + k if rng.random() < 0.9 else (c,)
    x = layout(rng, real(rng), shp, case.dtype, case.notes)
    if rng.random() < 0.15:
        x = x + 1e4
        case.notes.append("logits+1e4")
    case.args.append(x)
    tshp = (shp[0],) + shp[2:] if len(shp) > 1 else ()
    case.args.append(torch.randint(0, c, tshp, generator=torch.Generator().manual_seed(rng.getrandbits(31))))
    if rng.random() < 0.3:
        case.kwargs["weight"] = layout(rng, weights(rng), (c,), case.dtype, case.notes)
    a = rng.random()
    if a < 0.3:
        case.kwargs["alpha"] = rng.choice([0.25, 1.0, 0.75])
    elif a < 0.5:
        case.kwargs["alpha"] = layout(rng, positive(rng, 0.05, (0.0,)), (c,), case.dtype, case.notes)
    case.kwargs["gamma"] = rng.choice([2.0, 2.0, 0.0, 0.5, 3.5])
    if rng.random() < 0.3:
        case.kwargs["ignore_index"] = rng.choice([0, -100, 1])
    if rng.random() < 0.35:
        case.kwargs["label_smoothing"] = rng.choice([0.1, 0.5, 1.0])
    reduction(rng, case)
    return case


GENERATORS = {
    "binary_cross_entropy_with_logits": _bce_with_logits,
    "binary_cross_entropy": _bce,
    "l1_loss": _pair("l1_loss", weight=True),
    "mse_loss": _pair("mse_loss", weight=True),
    "huber_loss": _pair("huber_loss", weight=True,
                        extra=lambda rng, c: c.kwargs.update(delta=rng.choice([0.5, 1.0, 3.0]))),
    "smooth_l1_loss": _pair("smooth_l1_loss", extra=lambda rng, c: c.kwargs.update(beta=rng.choice([0.0, 0.5, 1.0]))),
    "soft_margin_loss": _pair("soft_margin_loss"),
    "poisson_nll_loss": _poisson,
    "gaussian_nll_loss": _gaussian,
    "kl_div": _kl_div,
    "multilabel_soft_margin_loss": _multilabel,
    "cross_entropy": _rowwise("cross_entropy"),
    "nll_loss": _rowwise("nll_loss"),
    "margin_ranking_loss": _margin_ranking,
    "hinge_embedding_loss": _hinge,
    "multi_margin_loss": _multi_margin,
    "multilabel_margin_loss": _multilabel_margin,
    "cosine_embedding_loss": _cosine_embedding,
    "triplet_margin_loss": _triplet,
    "ctc_loss": _ctc,
    "linear_cross_entropy": _linear_ce,
    "sigmoid_focal_loss": _sigmoid_focal,
    "focal_loss": _focal,
}


# ---- references of the losses torch does not have -------------------------------------------------
def _half_in_float(*ts):
    """float32 copies of half-type tensors (torch's CPU composites are slow or missing there)."""
    return [t.float() if isinstance(t, torch.Tensor) and t.dtype in (torch.float16, torch.bfloat16) else t for t in ts]


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def ref_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none", *, weight=None,
                           normalizer=None, ignore_index=-100):
    """torchvision's formula (float targets), on the one-hot of class indices (index C: background,
    ignored rows dropped, the mean over the kept rows' elements), times the weight, / normalizer."""
    from lossext._bench_focal import tv_sigmoid_focal_loss
    _check_reduction(reduction)
    dtype = inputs.dtype
    x, t, w = _half_in_float(inputs, targets, weight)
    keep = None
    if not t.is_floating_point():
        C = x.shape[-1]
        keep = (t != ignore_index).unsqueeze(-1).to(x.dtype)
        t = torch.nn.functional.one_hot(torch.where(t != ignore_index, t, C), C + 1)[..., :C].to(x.dtype)
    loss = tv_sigmoid_focal_loss(x, t, alpha, gamma)
    if keep is not None:  # an ignored row contributes nothing, whatever its logits
        loss = torch.where(keep > 0, loss, torch.zeros_like(loss))
    if w is not None:
        loss = loss * w
    if reduction == "mean":
        loss = loss.mean() if keep is None else loss.sum() / (keep.sum() * x.shape[-1])
    elif reduction == "sum":
        loss = loss.sum()
    if normalizer is not None:
        loss = loss / normalizer.to(loss.dtype)
    return loss.to(dtype)


def ref_focal_loss(input, target, alpha=None, gamma=2.0, weight=None, ignore_index=-100, reduction="mean",
                   label_smoothing=0.0):
    """-w_t a_t (1 - p_t)^gamma log p_t over log_softmax, cross_entropy's weighted mean and smoothing
    rule ((1 - eps) times that plus eps / C times the same term summed over every class)."""
    _check_reduction(reduction)
    dtype = input.dtype
    x, w, a = _half_in_float(input, weight, alpha)
    unbatched = x.dim() == 1
    lp = torch.log_softmax(x.unsqueeze(0) if unbatched else x, 1)
    t = target.unsqueeze(0) if unbatched else target
    C = lp.shape[1]
    valid = t != ignore_index
    tc = torch.where(valid, t, torch.zeros_like(t))
    w = torch.ones(C, dtype=lp.dtype) if w is None else w
    a = torch.ones(C, dtype=lp.dtype) if a is None else (a if isinstance(a, torch.Tensor) else torch.full((C,), a, dtype=lp.dtype))
    focal = -((1 - lp.exp()) ** gamma) * lp if gamma != 0 else -lp
    wt = w[tc] * valid
    loss = focal.gather(1, tc.unsqueeze(1)).squeeze(1) * w[tc] * a[tc]
    if label_smoothing > 0:
        u = (w * a).view(-1, *([1] * (lp.dim() - 2)))
        loss = (1 - label_smoothing) * loss + label_smoothing / C * (focal * u).sum(1)
    loss = torch.where(valid, loss, torch.zeros_like(loss))  # an ignored row: nothing, whatever its logits
    if unbatched:
        loss, wt = loss.squeeze(0), wt.squeeze(0)
    if reduction == "mean":
        loss = loss.sum() / wt.sum()
    elif reduction == "sum":
        loss = loss.sum()
    return loss.to(dtype)


# What a loss is compared with: torch's function, or for the losses torch lacks a reference above.
REFERENCES = {"sigmoid_focal_loss": ref_sigmoid_focal_loss, "focal_loss": ref_focal_loss}


# ---- documented deviations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deviation:
    losses: tuple
    reason: str
    when: Callable  # (case, what differs) -> bool

    def applies(self, case: Case, why: str) -> bool:
        return case.name in self.losses and bool(self.when(case, why))


def _has(case, note):
    return any(note in n for n in case.notes)


def _torch_nonfinite_lossext_finite(c, w):
    m = re.search(r"lossext (\S+), torch (\S+), torch float64 (\S+)", w)
    return bool(m) and math.isfinite(float(m.group(1))) and not math.isfinite(float(m.group(2)))


def _unscaled_gradient_overflow(c, w):
    m = re.search(r"grad \w+: at \d+: lossext (\S+), torch (\S+),", w)
    return bool(m) and math.isinf(float(m.group(1))) and abs(float(m.group(2))) > 1e30


def _no_worse_than_torch(w):
    """A value/grad mismatch where torch is off its float64 result by more than 1 (absolute, the half
    types' cancellation), and lossext is no further off than torch."""
    m = re.search(r"at \d+: lossext (\S+), torch (\S+), torch float64 (\S+)", w)
    if not m:
        return False
    a, t, e = (float(g.rstrip(",")) for g in m.groups())
    return all(map(math.isfinite, (a, t, e))) and abs(t - e) > 1 and abs(a - e) <= abs(t - e)


def _lce_ignored_nonfinite(c):
    """Some token that linear_cross_entropy ignores has a non-finite logit."""
    x, w, t = c.args[:3]
    if "ignore_index" not in c.kwargs or t.is_floating_point() or not x.is_floating_point():
        return False
    b = c.kwargs.get("linear_bias")
    w3 = w.double().reshape(w.shape[0], -1, w.shape[-1])  # (C, S, H)
    logits = torch.einsum("nh,csh->nsc", x.double().reshape(-1, x.shape[-1]), w3)
    logits = logits + (b.double().reshape(b.shape[0], -1).t() if b is not None else 0)  # (N, S, C)
    ignored = (t == c.kwargs["ignore_index"]).reshape(logits.shape[:-1])
    return bool((~logits.isfinite()).any(-1)[ignored].any())


def _reference_nan_lossext_not(c, w):
    m = re.search(r"grad \w+: at \d+: lossext (\S+), torch nan", w)
    return bool(m) and not math.isnan(float(m.group(1).rstrip(",")))


DEVIATIONS = [
    Deviation(("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "soft_margin_loss", "poisson_nll_loss",
               "gaussian_nll_loss", "triplet_margin_loss"),
              "README: complex inputs raise NotImplementedError (torch computes; l1_loss: a complex weight only)",
              lambda c, w: _has(c, "complex") and "lossext NotImplementedError" in w),
    Deviation(("huber_loss",), "README, where torch itself fails: huber_loss's backward with a target of "
              "another dtype (torch: 'Found dtype Long but expected Float')",
              lambda c, w: "torch RuntimeError (Found dtype" in w and "lossext computes" in w),
    Deviation(("soft_margin_loss",), "README, numerically stable forms: softplus(-x y) is finite where "
              "torch's log1p(exp(-x y)) overflows (even in float64)", _torch_nonfinite_lossext_finite),
    Deviation(("soft_margin_loss",), "README, where torch itself fails: a bool target with an input that "
              "requires grad (torch's backward negates the target)",
              lambda c, w: "on a bool tensor" in w and "lossext computes" in w),
    Deviation(("l1_loss", "mse_loss"), "README: a weighted half-type mean whose sum(weight) overflows the "
              "half type is 0 here (each term divided by inf), NaN in torch (inf / inf)",
              lambda c, w: "weight" in c.kwargs and c.kwargs["reduction"] == "mean" and "value:" in w
              and c.kwargs["weight"].dtype in (torch.float16, torch.bfloat16)
              and not math.isfinite(c.kwargs["weight"].sum().item())),
    Deviation(("l1_loss", "mse_loss"), "README: a weighted float16/bfloat16 mean's d/dweight uses the loss "
              "rounded to the half type (error about ulp(loss) / sum(weight))",
              lambda c, w: "weight" in c.kwargs and c.kwargs["reduction"] == "mean" and "grad weight" in w
              and c.kwargs["weight"].dtype in (torch.float16, torch.bfloat16)),
    Deviation(tuple(GENERATORS), "README, half types compute in float: with grad_output 0, where an unscaled "
              "gradient overflows (inf * 0 = NaN) depends on the precision of the math",
              lambda c, w: c.grad_output == 0.0 and "grad" in w and "nan" in w),
    Deviation(tuple(GENERATORS), "README: the gradient of a broadcast operand of an empty loss is 0 (an empty "
              "sum); torch's kl_div(log_target=True), poisson_nll_loss(full=True) and cosine_embedding_loss's "
              "broadcast input2 give NaN",
              lambda c, w: c.args[0].numel() == 0 and re.search(r"grad \w+: at \d+: lossext 0\.0, torch nan", w)
              is not None),
    Deviation(("cross_entropy",), "README, where torch itself fails: an ignored row's gradient is 0 even "
              "with non-finite logits (torch: NaN, from log_softmax's backward)",
              lambda c, w: "ignore_index" in c.kwargs and re.search(r"grad input: at \d+: lossext 0\.0, torch nan", w)
              is not None),
    Deviation(("linear_cross_entropy",), "README, where torch itself fails: an ignored token's logits "
              "gradient is 0 even where its logits are not finite (torch: NaN, spread by the matmuls into dx/dW)",
              lambda c, w: re.search(r"grad \w+: at \d+: lossext [-\d]\S*, torch nan", w) is not None
              and _lce_ignored_nonfinite(c)),
    Deviation(("linear_cross_entropy",), "rounding: in float16/bfloat16, dx = dlogits W and dW = dlogits^T x "
              "of half-rounded logits gradients cancel; where torch's own half result is off float64 by more "
              "than the tolerance, lossext is only asked to be no further off than torch",
              lambda c, w: c.dtype in (torch.float16, torch.bfloat16) and _no_worse_than_torch(w)),
    Deviation(("multi_margin_loss", "multilabel_margin_loss", "ctc_loss"), "README, where torch itself fails: float16/bfloat16 on the CPU (torch "
              "has no kernel; lossext computes, or raises the error of a bad argument)",
              lambda c, w: "exception: torch NotImplementedError" in w and c.dtype in (torch.float16, torch.bfloat16)),
    Deviation(("multi_margin_loss", "multilabel_margin_loss"), "README: an empty batch's mean is NaN and its sum 0 (torch returns "
              "uninitialised memory)", lambda c, w: c.args[0].dim() == 2 and c.args[0].shape[0] == 0
              and c.kwargs.get("reduction") in ("mean", "sum") and "value:" in w),
    Deviation(("cosine_embedding_loss",), "README: integer operands are converted to the computation dtype "
              "first; torch's integer products (x1 * x1).sum() overflow (int32 wraps)",
              lambda c, w: any(n.startswith("arg0:torch.int") for n in c.notes) and "value:" in w),
    Deviation(("cosine_embedding_loss",), "README: the half-type gradient of an operand "
              "broadcast along the features is rounded per element before it is summed (cancellation)",
              lambda c, w: _has(c, "broadcast") and c.dtype in (torch.float16, torch.bfloat16) and "grad" in w),
    Deviation(("triplet_margin_loss",), "rounding: margin + d(a, p) - d(a, n) cancels; distances near 1e4 summed "
              "in another order than torch's norm differ by ulp(d), far above the loss's own tolerance",
              lambda c, w: "value:" in w and max((a.double().nan_to_num(0, 0, 0).abs().max().item() if a.numel() else 0)
                                                 for a in c.args if isinstance(a, torch.Tensor)) >= 1e3),
    Deviation(("sigmoid_focal_loss", "focal_loss"), "README, focal losses: at the limits (p_t = 1 with "
              "gamma < 1; p = 0 at a -inf logit; the target gradient at an infinite logit) the composite's "
              "autograd gives 0 * inf = NaN, lossext the limit", _reference_nan_lossext_not),
    Deviation(tuple(GENERATORS), "README: a per-element gradient beyond the dtype's range before the "
              "reduction's scale and grad_output multiply it is inf (torch scales first)",
              _unscaled_gradient_overflow),
]
