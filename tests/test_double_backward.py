"""Second derivatives through lossext losses (issue 11): gradgradcheck in float64 for every loss and
option torch can differentiate twice, and Hessian-vector products equal to torch's."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import lossext.functional as LF
from lossext._bench_focal import composite_focal_loss, tv_sigmoid_focal_loss

D = torch.float64
R = ["none", "mean", "sum"]


def _g(seed):
    return torch.Generator().manual_seed(seed)


def rn(*s, seed=0, lo=None, hi=None):
    if lo is not None:
        return torch.rand(*s, generator=_g(seed), dtype=D) * (hi - lo) + lo
    return torch.randn(*s, generator=_g(seed), dtype=D)


def signs(*s, seed=0):
    return (torch.randint(0, 2, s, generator=_g(seed)) * 2 - 1).to(D)


# name -> list of (label, lossext fn, torch fn, differentiable tensors, other kwargs).
# fn(*diff, **kw) is called with the same arguments on both sides.
def _cases():
    x, t = rn(3, 4, seed=1), rn(3, 4, seed=2)
    w = rn(3, 4, seed=3, lo=0.5, hi=1.5)
    p01 = rn(3, 4, seed=4, lo=0.1, hi=0.9)
    cw = rn(4, seed=5, lo=0.5, hi=1.5)
    idx = torch.tensor([0, 3, 1])
    out = []
    for r in R:
        out += [
            ("mse", LF.mse_loss, F.mse_loss, (x, t), dict(reduction=r)),
            ("mse_w", LF.mse_loss, F.mse_loss, (x, t), dict(reduction=r, weight=w)),
            ("l1_w", LF.l1_loss, F.l1_loss, (x, t), dict(reduction=r, weight=w)),
            ("huber", LF.huber_loss, F.huber_loss, (x, t), dict(reduction=r, delta=0.7)),
            ("huber_w", LF.huber_loss, F.huber_loss, (x, t), dict(reduction=r, delta=0.7, weight=w)),
            ("smooth_l1", LF.smooth_l1_loss, F.smooth_l1_loss, (x, t), dict(reduction=r, beta=0.6)),
            ("soft_margin", LF.soft_margin_loss, F.soft_margin_loss, (x,), dict(target=signs(3, 4, seed=14), reduction=r)),
            ("bce", LF.binary_cross_entropy, F.binary_cross_entropy, (p01, p01.flip(0)), dict(reduction=r, weight=cw)),
            ("bce_logits", LF.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, (x, p01),
             dict(reduction=r, weight=cw, pos_weight=cw.flip(0))),
            ("multilabel_soft", LF.multilabel_soft_margin_loss, F.multilabel_soft_margin_loss, (x, p01),
             dict(reduction=r, weight=cw)),
            ("poisson", LF.poisson_nll_loss, F.poisson_nll_loss, (x, p01 * 3), dict(reduction=r, full=True)),
            ("poisson_lin", LF.poisson_nll_loss, F.poisson_nll_loss, (p01, p01 * 3), dict(reduction=r, log_input=False)),
            ("gaussian", LF.gaussian_nll_loss, F.gaussian_nll_loss, (x, t, w), dict(reduction=r, full=True)),
            ("gaussian_row_var", LF.gaussian_nll_loss, F.gaussian_nll_loss, (x, t, w[:, 0]), dict(reduction=r)),
            ("kl", LF.kl_div, F.kl_div, (x.log_softmax(1), p01), dict(reduction=r)),
            ("kl_log", LF.kl_div, F.kl_div, (x, t), dict(reduction=r, log_target=True)),
            ("ce", LF.cross_entropy, F.cross_entropy, (x,), dict(target=idx, reduction=r)),
            ("ce_opts", LF.cross_entropy, F.cross_entropy, (x,),
             dict(target=torch.tensor([0, -100, 2]), weight=cw, reduction=r, label_smoothing=0.2)),
            ("ce_prob", LF.cross_entropy, F.cross_entropy, (x, p01.softmax(1)), dict(reduction=r, label_smoothing=0.1)),
            ("ce_kdim", LF.cross_entropy, F.cross_entropy, (rn(2, 3, 2, seed=6),),
             dict(target=torch.tensor([[0, 2], [1, 1]]), reduction=r)),
            ("ce_unbatched", LF.cross_entropy, F.cross_entropy, (x[0],), dict(target=torch.tensor(2), reduction=r)),
            ("nll", LF.nll_loss, F.nll_loss, (x.log_softmax(1),), dict(target=idx, weight=cw, reduction=r)),
            ("margin_ranking", LF.margin_ranking_loss, F.margin_ranking_loss, (x[0], t[0], signs(4, seed=7)),
             dict(reduction=r, margin=0.3)),
            ("hinge", LF.hinge_embedding_loss, F.hinge_embedding_loss, (x,), dict(target=signs(3, 4, seed=8), reduction=r)),
            ("cosine", LF.cosine_embedding_loss, F.cosine_embedding_loss, (x, t),
             dict(target=signs(3, seed=9), margin=-0.2, reduction=r)),
            ("triplet", LF.triplet_margin_loss, F.triplet_margin_loss, (x, t, w), dict(reduction=r, margin=2.0)),
            ("triplet_swap_p3", LF.triplet_margin_loss, F.triplet_margin_loss, (x, t, w),
             dict(reduction=r, margin=2.0, p=3, swap=True)),
            ("triplet_dist", LF.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss, (x, t, w),
             dict(reduction=r, margin=2.0, swap=True)),
        ]
        if hasattr(F, "linear_cross_entropy"):
            out.append(("linear_ce", LF.linear_cross_entropy, F.linear_cross_entropy, (rn(3, 2, seed=10), rn(4, 2, seed=13)),
                        dict(target=idx[:2].repeat(2)[:3], reduction=r, label_smoothing=0.1)))
        out.append(("sigmoid_focal", LF.sigmoid_focal_loss, tv_sigmoid_focal_loss, (x, p01),
                    dict(reduction=r)))
        out.append(("focal", LF.focal_loss, composite_focal_loss, (x,),
                    dict(target=torch.tensor([0, -100, 2]), gamma=1.5, reduction=r)))
    return out


CASES = _cases()
IDS = [f"{c[0]}-{c[4]['reduction']}" for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradgradcheck(case):
    label, lf, _, diff, kw = case
    leaves = [d.clone().requires_grad_() for d in diff]
    fn = lambda *a: lf(*a, **kw)  # noqa: E731
    assert gradcheck(fn, leaves)
    assert gradgradcheck(fn, leaves)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hessian_vector_product_is_torchs(case):
    """The gradient penalty pattern: d/dleaves of <v, grad loss>, and d/dv, against torch."""
    label, lf, tf, diff, kw = case
    res = []
    for fn in (lf, tf):
        leaves = [d.clone().requires_grad_() for d in diff]
        loss = fn(*leaves, **kw)
        go = torch.randn(loss.shape, generator=_g(11), dtype=D).requires_grad_()
        gs = torch.autograd.grad(loss, leaves, go, create_graph=True)
        vs = [torch.randn(g.shape, generator=_g(12 + i), dtype=D) for i, g in enumerate(gs)]
        penalty = sum((g * v).sum() for g, v in zip(gs, vs))
        res.append(torch.autograd.grad(penalty, leaves + [go], allow_unused=True))
    for a, b, leaf in zip(*res, list(diff) + [None]):
        if a is None or b is None:  # a derivative that is identically zero may come back as None
            assert (a is None or not a.abs().sum()) and (b is None or not b.abs().sum()), label
        else:
            torch.testing.assert_close(a, b)


def test_second_order_training_step_matches_torch():
    """A MAML-style step: the inner update's gradient is differentiated by the outer loss."""
    def run(ce):
        torch.manual_seed(0)
        lin = torch.nn.Linear(6, 4).double()
        x, y = torch.randn(8, 6, dtype=D), torch.randint(0, 4, (8,))
        params = list(lin.parameters())
        gs = torch.autograd.grad(ce(torch.nn.functional.linear(x, *params), y), params, create_graph=True)
        fast = [p - 0.5 * g for p, g in zip(params, gs)]
        outer = ce(torch.nn.functional.linear(x, *fast), y, label_smoothing=0.1)
        return torch.autograd.grad(outer, params)
    for a, b in zip(run(LF.cross_entropy), run(F.cross_entropy)):
        torch.testing.assert_close(a, b)


# Where torch has no second derivative (it raises), lossext's is the loss's own: checked numerically.
BEYOND = []
for _r in R:
    _x = rn(3, 4, seed=20)
    BEYOND += [
        ("multi_margin_p2", lambda x, r=_r: LF.multi_margin_loss(x, torch.tensor([1, 0, 3]), p=2, margin=1.5,
                                                               weight=rn(4, seed=21, lo=0.5, hi=1.5), reduction=r), _x),
        ("multi_margin_unbatched", lambda x, r=_r: LF.multi_margin_loss(x[0], torch.tensor(2), margin=1.5, reduction=r), _x),
        ("focal_weighted", lambda x, r=_r: LF.focal_loss(x, torch.tensor([0, -100, 2]), alpha=rn(4, seed=22, lo=0.2, hi=0.8),
                                                        weight=rn(4, seed=23, lo=0.5, hi=1.5), gamma=2.0, reduction=r), _x),
        ("multilabel_margin", lambda x, r=_r: LF.multilabel_margin_loss(
            x, torch.tensor([[3, 0, -1, 1], [1, -1, 0, 0], [0, 1, 2, 3]]), reduction=r), _x),
    ]


@pytest.mark.parametrize("case", BEYOND, ids=[f"{c[0]}-{i % 3}" for i, c in enumerate(BEYOND)])
def test_gradgradcheck_where_torch_has_none(case):
    _, fn, x = case
    assert gradgradcheck(fn, [x.clone().requires_grad_()])


def test_ctc_has_no_second_derivative():
    x = rn(6, 2, 4).log_softmax(2).detach().requires_grad_()
    loss = LF.ctc_loss(x, torch.tensor([[1, 2], [3, 3]]), torch.tensor([6, 6]), torch.tensor([2, 2]))
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        (g ** 2).sum().backward()
    with pytest.raises(RuntimeError, match="double backward"):  # also when only autograd.grad asks
        torch.autograd.grad((g ** 2).sum(), x)
    with pytest.raises(RuntimeError, match="torch.func"):
        torch.func.grad(lambda a: LF.ctc_loss(a, torch.tensor([[1, 2], [3, 3]]), torch.tensor([6, 6]),
                                              torch.tensor([2, 2])))(x.detach())
