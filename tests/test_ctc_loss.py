"""ctc_loss against torch and against a brute-force sum over every alignment.

Values and gradients over padded/concatenated targets, unbatched inputs, lengths as tensors
(int64/int32) or lists, any blank, every reduction, zero_infinity with impossible samples,
input_length < T, empty targets and inputs, the four dtypes (half types against a float64
torch reference); gradcheck; opcheck; torch.compile; bitwise determinism (runs and thread counts);
bad inputs in a subprocess (RuntimeError naming the sample, never a crash; NaN on CUDA);
the separate backward with a strided per-sample grad_output; module; a training loop.
"""
from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF
from harness import DEVICES, REDUCTIONS, assert_close, check_loss, opcheck, run_every_isa

OPS = torch.ops.lossext


def _case(T=12, N=4, C=7, S=5, device="cpu", dtype=torch.float32, blank=0, seed=0, concat=False, lengths="tensor"):
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(T, N, C, generator=g, dtype=torch.float64).log_softmax(2).to(dtype)
    labels = [c for c in range(C) if c != blank]
    tl = torch.randint(0, S + 1, (N,), generator=g)
    tl[0] = S
    il = torch.randint(max(1, T // 2), T + 1, (N,), generator=g)
    il[0] = T
    tg = torch.tensor(labels)[torch.randint(0, len(labels), (N, S), generator=g)]
    if concat:
        tg = torch.cat([tg[n, :tl[n]] for n in range(N)])
    if lengths == "list":
        il, tl = il.tolist(), tl.tolist()
    elif lengths == "int32":
        il, tl = il.int(), tl.int()
    dev = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t  # noqa: E731
    return lp.to(device), dev(tg), dev(il), dev(tl)


def _check(lp, tg, il, tl, **kw):
    return check_loss(LF.ctc_loss, F.ctc_loss, (lp, tg, il, tl), kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_torch(reduction, dtype, device):
    for concat, lengths, blank in ((False, "tensor", 0), (True, "list", 6), (False, "int32", 3)):
        lp, tg, il, tl = _case(device=device, dtype=dtype, blank=blank, concat=concat, lengths=lengths)
        _check(lp, tg, il, tl, blank=blank, reduction=reduction)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_impossible_and_empty_samples(reduction, zero_infinity, device):
    # sample 1: too short for its repeated labels (impossible); 2: empty target; 3: empty input
    # and empty target; 4: empty input, non-empty target (impossible).
    lp, _, _, _ = _case(T=6, N=5, C=5, device=device, dtype=torch.float64)
    tg = torch.tensor([[1, 2, 3], [2, 2, 2], [1, 1, 1], [3, 1, 2], [4, 4, 4]], device=device)
    il = torch.tensor([6, 4, 5, 0, 0], device=device)
    tl = torch.tensor([3, 3, 0, 0, 2], device=device)
    _check(lp, tg, il, tl, reduction=reduction, zero_infinity=zero_infinity)


@pytest.mark.parametrize("device", DEVICES)
def test_unbatched_and_layouts(device):
    lp, tg, il, tl = _case(device=device, dtype=torch.float64)
    for red in REDUCTIONS:
        _check(lp[:, 0], tg[0, :int(tl[0])], il[:1], tl[:1], reduction=red)  # (T, C), 1-D target
        _check(lp[:, 0], tg[:1], il[0], tl[0], reduction=red)  # 0-d lengths, (1, S) target
        _check(lp.transpose(0, 1).contiguous().transpose(0, 1), tg.t().contiguous().t(), il, tl, reduction=red)
    # non-normalised inputs follow torch's formula too
    _check(torch.randn(9, 3, 5, dtype=torch.float64, device=device), tg[:3, :3] % 4 + 1, [9, 8, 7], [3, 2, 1],
           reduction="sum")


@pytest.mark.parametrize("T,C,L", [(1, 3, 1), (3, 3, 2), (4, 3, 2), (5, 3, 3), (6, 3, 2), (6, 2, 3)])
def test_brute_force_alignments(T, C, L):
    """nll = -log sum over every path of length T that collapses to the target; torch's gradient
    convention is exp(lp) - occupancy, the occupancy from the path sum's own autograd."""
    g = torch.Generator().manual_seed(T * 100 + C * 10 + L)
    blank = C - 1 if T % 2 else 0
    labels = [c for c in range(C) if c != blank]
    for trial in range(3):
        lp = torch.randn(T, C, generator=g, dtype=torch.float64).log_softmax(1)
        tgt = [labels[i] for i in torch.randint(0, len(labels), (L,), generator=g).tolist()]
        if trial == 1 and L >= 2:
            tgt[1] = tgt[0]  # a repeat needs a blank between
        x = lp.clone().requires_grad_()
        scores = []
        for path in itertools.product(range(C), repeat=T):
            col = [k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k)]
            if col == tgt:
                scores.append(x[torch.arange(T), torch.tensor(path)].sum())
        ref = -torch.logsumexp(torch.stack(scores), 0) if scores else torch.tensor(math.inf, dtype=torch.float64)
        leaf = lp.clone().requires_grad_()
        ours = LF.ctc_loss(leaf, torch.tensor(tgt), [T], [L], blank=blank, reduction="sum")
        if not scores:
            assert ours.item() == math.inf
            continue
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
        (occ,) = torch.autograd.grad(ref, x)
        (ga,) = torch.autograd.grad(ours, leaf)
        torch.testing.assert_close(ga, lp.exp() + occ, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(reduction):
    lp, tg, il, tl = _case(T=7, N=3, C=5, S=3, dtype=torch.float64)
    x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
    # through log_softmax, as torch's own tests (the exp(lp) term is torch's normalised shortcut)
    assert torch.autograd.gradcheck(lambda a: LF.ctc_loss(a.log_softmax(2), tg, il, tl, reduction=reduction), [x])


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    op, bwd = OPS.ctc_loss.default, OPS.ctc_loss_backward.default
    for concat in (False, True):
        lp, tg, il, tl = _case(T=6, N=3, C=5, S=3, device=device, concat=concat)
        for red in (0, 1, 2):
            for mask in ([True], [False]):
                opcheck(op, (lp.clone().requires_grad_(), tg, il, tl, 0, red, False, mask))
            raw = op(lp, tg, il, tl, 0, red, True, [True])[2]
            go = torch.randn((), device=device) if red else torch.randn(3, device=device)
            opcheck(bwd, (go, lp, tg, il, tl, 0, red, True, raw, [True]))
    opcheck(op, (lp[:, 0].clone().requires_grad_(), tg[: int(tl[0])], il[:1], tl[:1], 0, 0, False, [True]))
    opcheck(op, (lp.half().requires_grad_(), tg, il, tl, 0, 1, False, [True]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compile_fullgraph(reduction, device):
    lp, tg, il, tl = _case(device=device, concat=reduction == "sum")
    leaf = lp.clone().requires_grad_()
    f = lambda a: LF.ctc_loss(a, tg, il, tl, reduction=reduction, zero_infinity=True)  # noqa: E731
    a, b = torch.compile(f, fullgraph=True)(leaf), f(leaf)
    torch.testing.assert_close(a, b)
    g = torch.randn(a.shape, device=device)
    torch.testing.assert_close(torch.autograd.grad(a, leaf, g)[0], torch.autograd.grad(b, leaf, g)[0])


@pytest.mark.parametrize("device", DEVICES)
def test_separate_backward_with_strided_grad_output(device):
    lp, tg, il, tl = _case(device=device, dtype=torch.float64)
    for red in ("none", "mean"):
        a, b = lp.clone().requires_grad_(), lp.clone().requires_grad_()
        la, lb = LF.ctc_loss(a, tg, il, tl, reduction=red), F.ctc_loss(b, tg, il, tl, reduction=red)
        go = torch.randn(8, device=device, dtype=torch.float64)[::2] if red == "none" else torch.tensor(0.3, dtype=torch.float64, device=device)
        torch.testing.assert_close(torch.autograd.grad(la, a, go)[0], torch.autograd.grad(lb, b, go)[0])
        # an expanded (stride 0) grad_output, as (loss.sum()).backward() gives
        a.grad = None
        LF.ctc_loss(a, tg, il, tl, reduction="none").sum().backward()
        torch.testing.assert_close(a.grad, torch.autograd.grad(F.ctc_loss(b, tg, il, tl, reduction="none").sum(), b)[0])


def test_deterministic_runs_and_threads():
    lp, tg, il, tl = _case(T=60, N=6, C=30, S=20, dtype=torch.float32)
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)  # torch's CTC refuses on CUDA; lossext runs everywhere
    try:
        res = []
        for nt in (1, 2, 1, 2):
            torch.set_num_threads(nt)
            for red in ("mean", "none"):
                a = lp.clone().requires_grad_()
                loss = LF.ctc_loss(a, tg, il, tl, reduction=red)
                res.append((loss, torch.autograd.grad(loss.sum(), a)[0]))
        for k, r in enumerate(res[2:], 2):  # same reduction, other thread counts and runs
            assert all(torch.equal(p, q) for p, q in zip(res[k % 2], r))
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)


_BAD = textwrap.dedent("""
    import torch, lossext.functional as LF
    lp = torch.randn(6, 2, 5).log_softmax(2)
    tg = torch.tensor([[1, 2, 3], [2, 3, 4]])
    cases = {
        "label_ge_C": (lp, torch.tensor([[1, 5, 3], [2, 3, 4]]), [6, 6], [3, 3], {}),
        "label_huge": (lp, torch.tensor([[1, 2, 3], [2, 1 << 40, 4]]), [6, 6], [3, 3], {}),
        "negative_label": (lp, torch.tensor([[1, -1, 3], [2, 3, 4]]), [6, 6], [3, 3], {}),
        "blank_in_target": (lp, torch.tensor([[1, 2, 3], [2, 0, 4]]), [6, 6], [3, 3], {}),
        "blank_in_target_2": (lp, tg, [6, 6], [3, 3], {"blank": 4}),
        "input_too_long": (lp, tg, [6, 7], [3, 3], {}),
        "target_too_long": (lp, tg, [6, 6], [3, 4], {}),
        "negative_input_length": (lp, tg, [6, -1], [3, 3], {}),
        "negative_target_length": (lp, tg, [6, 6], [-2, 3], {}),
        "lengths_count": (lp, tg, [6], [3, 3], {}),
        "target_lengths_count": (lp, tg, [6, 6], [3, 3, 1], {}),
        "concat_sum_too_long": (lp, torch.tensor([1, 2, 3, 4]), [6, 6], [3, 3], {}),
        "concat_bad_label": (lp, torch.tensor([1, 2, 3, 2, 9, 4]), [6, 6], [3, 3], {}),
        "wrong_dims_lp": (lp[None], tg, [6, 6], [3, 3], {}),
        "wrong_dims_targets": (lp, tg[None], [6, 6], [3, 3], {}),
        "blank_out_of_range": (lp, tg, [6, 6], [3, 3], {"blank": 5}),
        "float_lengths": (lp, tg, torch.tensor([6., 6.]), torch.tensor([3, 3]), {}),
        "empty_lp": (lp[:, :0], tg[:0], [], [], {}),
    }
    for name, (a, t, il, tl, kw) in cases.items():
        try:
            LF.ctc_loss(a, t, il, tl, **kw)
            print(name, "no-error")
        except Exception as e:
            print(name, type(e).__name__, str(e).replace("\\n", " "))
""")


def test_bad_inputs_raise_and_never_crash():
    r = subprocess.run([sys.executable, "-c", _BAD], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"crashed:\n{r.stdout}\n{r.stderr}"
    out = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert len(out) == 18
    for name, msg in out.items():
        assert msg.startswith("RuntimeError ctc_loss"), (name, msg)
    assert "targets[0][1] = 5 is out of range for 5 classes (blank=0)" in out["label_ge_C"]
    assert "targets[1][1] = 1099511627776 is out of range" in out["label_huge"]
    assert "targets[0][1] = -1 is out of range" in out["negative_label"]
    assert "targets[1][1] = 0 is the blank label" in out["blank_in_target"]
    assert "targets[1][2] = 4 is the blank label (blank=4)" in out["blank_in_target_2"]
    assert "input_lengths[1] = 7" in out["input_too_long"]
    assert "target_lengths[1] = 4" in out["target_too_long"]
    assert "input_lengths[1] = -1 is negative" in out["negative_input_length"]
    assert "target_lengths[0] = -2 is negative" in out["negative_target_length"]
    assert "targets[4] (sample 1, position 1) = 9" in out["concat_bad_label"]


@pytest.mark.parametrize("device", DEVICES)
def test_int_log_probs_not_implemented(device):
    with pytest.raises(NotImplementedError):
        LF.ctc_loss(torch.zeros(3, 1, 4, dtype=torch.int32, device=device), torch.tensor([[1]]), [3], [1])
    with pytest.raises(TypeError):
        LF.ctc_loss(torch.zeros(3, 4), torch.tensor([1]), 3, 1)
    for il, tl in (([3], torch.tensor([1])), (torch.tensor([3]), [1])):  # torch's overloads: not mixed
        for f in (F.ctc_loss, LF.ctc_loss):
            with pytest.raises(TypeError):
                f(torch.zeros(3, 4), torch.tensor([1]), il, tl)
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        LF.ctc_loss(torch.zeros(3, 4), torch.tensor([1]), [3], [1], reduction="foo")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_invalid_device_labels_are_nan_and_deterministic():
    lp, tg, il, tl = _case(T=30, N=4, C=9, S=6, device="cuda")
    bad = tg.clone()
    bad[1, 0] = 9  # out of range, on the device: no host check
    bad[2, 1] = 0  # the blank
    a = lp.clone().requires_grad_()
    loss = LF.ctc_loss(a, bad, il.cuda(), tl.cuda(), reduction="none")
    (g,) = torch.autograd.grad(loss.sum(), a)
    assert loss[1].isnan() and loss[2].isnan() and loss[[0, 3]].isfinite().all()
    assert g[:, 1:3].isnan().all() and not g[:, [0, 3]].isnan().any()
    il_bad = il.cuda().clone()
    il_bad[3] = 31
    assert LF.ctc_loss(lp, tg, il_bad, tl.cuda(), reduction="none")[3].isnan()
    torch.use_deterministic_algorithms(True)
    try:
        lp, tg, il, tl = _case(T=200, N=8, C=40, S=50, device="cuda")
        res = []
        for _ in range(2):
            a = lp.clone().requires_grad_()
            loss = LF.ctc_loss(a, tg, il, tl)
            res.append((loss, torch.autograd.grad(loss, a)[0]))
        assert torch.equal(res[0][0], res[1][0]) and torch.equal(res[0][1], res[1][1])
        # the CUDA results against the CPU's
        b = lp.cpu().clone().requires_grad_()
        lc = LF.ctc_loss(b, tg.cpu(), il.cpu(), tl.cpu())
        assert_close(res[0][0], lc, torch.float32, "loss")
        assert_close(res[0][1], torch.autograd.grad(lc, b)[0], torch.float32, "grad")
    finally:
        torch.use_deterministic_algorithms(False)


def test_long_targets_match_torch():
    lp, tg, il, tl = _case(T=300, N=2, C=20, S=120, dtype=torch.float64)
    _check(lp, tg, il, tl, reduction="mean")


def test_double_backward_raises():
    lp, tg, il, tl = _case(dtype=torch.float64)
    leaf = lp.clone().requires_grad_()
    (g,) = torch.autograd.grad(LF.ctc_loss(leaf, tg, il, tl), leaf, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward of ctc_loss"):
        g.sum().backward()


def test_module_and_training_loop():
    ours, theirs = lossext.nn.CTCLoss(blank=2, zero_infinity=True), torch.nn.CTCLoss(blank=2, zero_infinity=True)
    assert isinstance(ours, torch.nn.CTCLoss) and repr(ours) == repr(theirs)
    lp, tg, il, tl = _case(blank=2)
    leaf = lp.clone().requires_grad_()
    torch.testing.assert_close(ours(leaf, tg, il, tl), theirs(leaf, tg, il, tl))
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 7)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x = torch.randn(12, 4, 8)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ours(net(x).log_softmax(2), tg, il, tl)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_every_isa():
    code = (
        "import torch, lossext, lossext.functional as LF, torch.nn.functional as F\n"
        "g = torch.Generator().manual_seed(0)\n"
        "lp = torch.randn(40, 3, 37, dtype=torch.float64, generator=g).log_softmax(2)\n"
        "tg = torch.randint(1, 37, (3, 19), generator=g); il = [40, 33, 38]; tl = [19, 7, 0]\n"
        "for dt in (torch.float64, torch.float32):\n"
        "    a_in = lp.to(dt).requires_grad_(); b_in = lp.requires_grad_()\n"
        "    a = LF.ctc_loss(a_in, tg, il, tl, reduction='none'); b = F.ctc_loss(b_in, tg, il, tl, reduction='none')\n"
        "    assert (a.double() - b).abs().max() <= 1e-4 * (1 + b.abs().max()), dt\n"
        "    ga, = torch.autograd.grad(a.sum(), a_in); gb, = torch.autograd.grad(b.sum(), b_in)\n"
        "    assert (ga.double() - gb).abs().max() <= 1e-4, dt\n"
        "print(lossext.cpu_isa())\n"
    )
    run_every_isa(code)
