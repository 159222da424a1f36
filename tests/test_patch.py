"""lossext.patch(): code written against torch.nn / torch.nn.functional runs lossext's kernels while
patched (counted at the dispatcher), gives torch's numbers, and gets exactly torch's objects back."""
import collections
import copy
import inspect
import io
import threading

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import lossext
import lossext.functional as LF
import lossext.nn as LN
from lossext import _patch

TORCH_F = dict(_patch._TORCH_FUNCTIONAL)  # torch's functions, taken before any test patched
TORCH_NN = dict(_patch._TORCH_MODULES)


class CountLossextOps(TorchDispatchMode):
    """Counts the torch.ops.lossext.* calls that reach the dispatcher."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "lossext":
            self.ops[func._schema.name.split("::")[1]] += 1
        return func(*args, **(kwargs or {}))


def _snapshot():
    return dict(vars(F)), dict(vars(torch.nn)), dict(vars(torch.nn.modules.loss))


def _assert_restored(snap):
    for before, mod in zip(snap, (F, torch.nn, torch.nn.modules.loss)):
        now = vars(mod)
        changed = [k for k in before if now.get(k) is not before[k]]
        assert not changed, f"{mod.__name__}: not restored: {changed}"
        assert set(now) == set(before), f"{mod.__name__}: names added or removed"


@pytest.fixture(autouse=True)
def _never_leak_a_patch():
    snap = _snapshot()
    yield
    lossext.unpatch(force=True)
    assert not lossext.is_patched()
    _assert_restored(snap)


def test_patched_names_are_derived_and_drop_in():
    names = _patch.patched_names()
    want_f = sorted(n for n in LF.__all__ if hasattr(F, n))
    want_nn = sorted(n for n in LN.__all__ if hasattr(torch.nn, n))
    assert names["torch.nn.functional"] == want_f and "cross_entropy" in want_f and "l1_loss" in want_f
    assert names["torch.nn"] == want_nn and "CrossEntropyLoss" in want_nn
    assert "focal_loss" not in want_f and "FocalLoss" not in want_nn  # lossext-only: nothing to swap
    # Every swapped function takes torch's arguments in torch's order (lossext may add keyword-only ones).
    for n in want_f:
        pt = list(inspect.signature(TORCH_F[n]).parameters.values())
        pl = list(inspect.signature(getattr(LF, n)).parameters.values())[:len(pt)]
        assert [(p.name, p.kind, p.default) for p in pl] == [(p.name, p.kind, p.default) for p in pt], n
    for n in want_nn:
        assert issubclass(getattr(LN, n), TORCH_NN[n])


def _train(steps=4):
    """A small training loop that knows only torch.nn and torch.nn.functional."""
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh())
    cls_head, reg_head, tag_head = torch.nn.Linear(16, 3), torch.nn.Linear(16, 2), torch.nn.Linear(16, 4)
    params = [*body.parameters(), *cls_head.parameters(), *reg_head.parameters(), *tag_head.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    ce = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1)
    smooth = torch.nn.SmoothL1Loss(beta=0.5)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    r, tags = torch.randn(32, 2), torch.rand(32, 4).round()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        h = body(x)
        loss = (ce(cls_head(h), y) + smooth(reg_head(h), r) + 0.5 * F.mse_loss(reg_head(h), r)
                + F.binary_cross_entropy_with_logits(tag_head(h), tags) + F.l1_loss(reg_head(h), r, reduction="sum") / 64)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses), [p.detach().clone() for p in params]


def test_training_loop_runs_lossext_and_matches_torch():
    with CountLossextOps() as plain:
        ref_losses, ref_params = _train()
    assert not plain.ops  # unpatched: torch's code paths only
    with lossext.patched(), CountLossextOps() as counted:
        losses, params = _train()
    for op in ("cross_entropy", "smooth_l1_loss", "mse_loss", "binary_cross_entropy_with_logits", "l1_loss"):
        assert counted.ops[op] >= 4, (op, counted.ops)
    torch.testing.assert_close(losses, ref_losses, rtol=1e-5, atol=1e-6)
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not losses.isnan().any() and losses[-1] < losses[0]


def test_modules_made_before_the_patch_run_lossext_too():
    m = torch.nn.MSELoss()  # torch's class: its forward looks F.mse_loss up at call time
    x, t = torch.randn(5, requires_grad=True), torch.randn(5)
    with lossext.patched(), CountLossextOps() as counted:
        m(x, t).backward()
    assert type(m) is TORCH_NN["MSELoss"] and counted.ops["mse_loss"] == 1


def test_restores_exactly_nested_and_on_error():
    snap = _snapshot()
    lossext.unpatch()  # without patch: no-op
    _assert_restored(snap)
    lossext.patch()
    lossext.patch()  # a second patch() must not take lossext's objects for torch's
    assert F.cross_entropy is LF.cross_entropy and torch.nn.CrossEntropyLoss is not TORCH_NN["CrossEntropyLoss"]
    assert torch.nn.modules.loss.CrossEntropyLoss is TORCH_NN["CrossEntropyLoss"]  # the classes' home: untouched
    lossext.unpatch()
    assert lossext.is_patched() and F.l1_loss is LF.l1_loss  # one patch() still open
    lossext.unpatch()
    _assert_restored(snap)
    with pytest.raises(ZeroDivisionError):
        with lossext.patched():
            with lossext.patched():
                assert F.mse_loss is LF.mse_loss
            assert F.mse_loss is LF.mse_loss  # the inner exit leaves the outer patch on
            1 / 0
    _assert_restored(snap)
    lossext.patch()
    lossext.patch()
    lossext.unpatch(force=True)
    _assert_restored(snap)

    @lossext.patched()
    def decorated():
        return F.huber_loss is LF.huber_loss
    assert decorated() and not lossext.is_patched()


def test_a_name_rebound_while_patched_is_left_alone():
    mine = object()
    lossext.patch()
    F.kl_div = mine
    with pytest.warns(RuntimeWarning, match="kl_div was re-bound"):
        lossext.unpatch()
    assert F.kl_div is mine and F.l1_loss is TORCH_F["l1_loss"]
    F.kl_div = TORCH_F["kl_div"]


def test_isinstance_before_and_while_patched():
    before = torch.nn.CrossEntropyLoss()
    with lossext.patched():
        during = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
        assert type(during) is LN.CrossEntropyLoss and during.label_smoothing == 0.2
        assert isinstance(during, torch.nn.CrossEntropyLoss) and isinstance(before, torch.nn.CrossEntropyLoss)
        assert isinstance(during, torch.nn.modules.loss._WeightedLoss)
        assert not isinstance(torch.nn.NLLLoss(), torch.nn.CrossEntropyLoss)
        assert issubclass(TORCH_NN["CrossEntropyLoss"], torch.nn.CrossEntropyLoss)
        assert issubclass(LN.CrossEntropyLoss, torch.nn.CrossEntropyLoss)
        assert not issubclass(LN.NLLLoss, torch.nn.CrossEntropyLoss)

        class Mine(torch.nn.CrossEntropyLoss):  # third-party subclass defined while patched
            def __init__(self):
                super().__init__(reduction="sum")

        mine = Mine()
        assert type(mine) is Mine and isinstance(mine, torch.nn.CrossEntropyLoss) and not isinstance(during, Mine)
        x, y = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 2, 1, 0])
        with CountLossextOps() as counted:
            got = mine(x, y)
        assert counted.ops["cross_entropy"] == 1
        torch.testing.assert_close(got, TORCH_F["cross_entropy"](x, y, reduction="sum"))
    assert isinstance(during, torch.nn.CrossEntropyLoss) and isinstance(mine, torch.nn.CrossEntropyLoss)
    assert not isinstance(before, LN.CrossEntropyLoss)  # lossext's own classes are unchanged by patch()


def test_state_dict_and_pickle_interchange():
    w, pw = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([3.0, 1.0, 0.5])
    ref_ce, ref_bce = torch.nn.CrossEntropyLoss(weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    with lossext.patched():
        ce = torch.nn.CrossEntropyLoss(weight=torch.ones(3))
        bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(3))
        ce.load_state_dict(ref_ce.state_dict())
        bce.load_state_dict(ref_bce.state_dict())
        buf = io.BytesIO()
        torch.save({"ce": ce, "torch_ce": ref_ce}, buf)  # both kinds pickle while patched
    assert ce.state_dict().keys() == ref_ce.state_dict().keys()
    back = torch.nn.CrossEntropyLoss()
    back.weight = torch.zeros(3)
    back.load_state_dict(ce.state_dict())
    torch.testing.assert_close(back.weight, w)
    torch.testing.assert_close(bce.pos_weight, pw)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert type(loaded["ce"]) is LN.CrossEntropyLoss and type(loaded["torch_ce"]) is TORCH_NN["CrossEntropyLoss"]
    x, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    torch.testing.assert_close(loaded["ce"](x, y), ref_ce(x, y))
    torch.testing.assert_close(copy.deepcopy(bce)(x, y.float()[:, None].expand(6, 3)),
                               ref_bce(x, y.float()[:, None].expand(6, 3)))


@pytest.mark.filterwarnings("ignore::UserWarning")  # kl_div mean, linear_cross_entropy options: as torch
def test_every_patched_function_on_torch_samples():
    """Each swapped torch.nn.functional name, called as torch's, runs lossext's op (no recursion through
    the patched names) and gives torch's values on PyTorch's OpInfo samples."""
    pytest.importorskip("expecttest")
    from torch.testing._internal.common_methods_invocations import op_db
    ops = {o.name[len("nn.functional."):]: o for o in op_db if o.name.startswith("nn.functional.")}
    for name in _patch.patched_names()["torch.nn.functional"]:
        samples = list(ops[name].sample_inputs("cpu", torch.float64))[:3]
        assert samples, name
        for s in samples:
            ref = TORCH_F[name](s.input, *s.args, **s.kwargs)
            with lossext.patched(), CountLossextOps() as counted:
                got = getattr(torch.nn.functional, name)(s.input, *s.args, **s.kwargs)
            assert sum(counted.ops.values()) >= 1, name
            torch.testing.assert_close(got, ref, equal_nan=True, msg=lambda m: f"{name} {s}: {m}")


def test_compiled_code_under_the_patch():
    def step(x, t):
        return F.mse_loss(x, t) + torch.nn.functional.l1_loss(x, t)

    seen = []

    def backend(gm, example_inputs):  # the ops dynamo put in the graph
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    x, t = torch.randn(8, requires_grad=True), torch.randn(8)
    ref = TORCH_F["mse_loss"](x, t) + TORCH_F["l1_loss"](x, t)
    torch._dynamo.reset()
    with lossext.patched():
        got = torch.compile(step, fullgraph=True, backend=backend)(x, t)
    torch._dynamo.reset()
    assert any("lossext.mse_loss" in s for s in seen) and any("lossext.l1_loss" in s for s in seen), seen
    torch.testing.assert_close(got, ref)


def test_patch_and_unpatch_from_many_threads():
    """patch/unpatch are serialized and counted: balanced calls from many threads end restored, and
    while any thread holds a patch the names stay lossext's (the swap itself is process-wide)."""
    snap = _snapshot()
    errors, start = [], threading.Barrier(8)

    def worker():
        try:
            start.wait()
            for _ in range(200):
                with lossext.patched():
                    if F.cross_entropy is not LF.cross_entropy or not lossext.is_patched():
                        errors.append("unpatched while a patch was held")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]
    assert not lossext.is_patched()
    _assert_restored(snap)
