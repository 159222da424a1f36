"""Cases of tests/test_distributed.py, run inside gloo process groups spawned by `spawn`.

Every rank builds the same full problem from one seed, keeps its vocabulary slice, and checks the
distributed loss and the gradient of its slice against torch (and the single-process lossext) on the
full problem. Several cases run in one spawn (process start-up dominates the cost).
"""
from __future__ import annotations

import itertools
import os
import socket
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, case, kwargs, queue):
    try:
        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        backend = "gloo"
        if kwargs.get("device") == "cuda":  # one GPU per rank, NCCL
            torch.cuda.set_device(rank)
            backend = "nccl"
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        try:
            out = CASES[case](rank, world, **kwargs)
        finally:
            dist.destroy_process_group()
        queue.put((rank, None, out))
    except BaseException:  # noqa: BLE001 (reported to the parent)
        queue.put((rank, traceback.format_exc(), None))


def spawn(case: str, world: int, timeout: float = 120.0, **kwargs):
    """Runs CASES[case](rank, world, **kwargs) on `world` gloo ranks; returns their results by rank.
    Raises with the ranks' tracebacks on failure, and kills the ranks after `timeout` seconds (a hang
    fails instead of blocking CI)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, case, kwargs, queue), daemon=True) for r in range(world)]
    for p in procs:
        p.start()
    results, errors = {}, []
    import queue as _q
    import time

    deadline = time.monotonic() + timeout
    try:
        while len(results) + len(errors) < world:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"distributed case {case!r} ({world} ranks) did not finish in {timeout:.0f} s; "
                                   f"done: {sorted(results)}; errors: {errors}")
            try:
                rank, err, out = queue.get(timeout=min(left, 5.0))
            except _q.Empty:
                if any(p.exitcode not in (None, 0) for p in procs) and queue.empty():
                    raise RuntimeError(f"distributed case {case!r}: a rank died "
                                       f"(exit codes {[p.exitcode for p in procs]}); errors: {errors}")
                continue
            if err is not None:
                errors.append(f"rank {rank}:\n{err}")
            else:
                results[rank] = out
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    if errors:
        raise AssertionError("\n".join(errors))
    return [results[r] for r in range(world)]


# ---- helpers inside a rank -------------------------------------------------------------------------

def _slices(world, V, uneven):
    if not uneven:
        v = V // world
        return [(r * v, v) for r in range(world)]
    # uneven: sizes 1, 2, ... scaled to V (every slice non-empty)
    w = list(range(1, world + 1))
    sizes = [V * x // sum(w) for x in w]
    sizes[-1] += V - sum(sizes)
    starts = [sum(sizes[:r]) for r in range(world)]
    return list(zip(starts, sizes))


def _same_on_all_ranks(t):
    """The loss's bits agree on every rank (an extra all_gather, outside the code under test)."""
    t = t.detach().float().reshape(-1).contiguous()  # (on the backend's device)
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    for o in out:
        assert torch.equal(o.view(torch.int32), t.view(torch.int32)), "loss differs between ranks"


def _tol(dtype):
    return dict(atol=2e-2, rtol=2e-2) if dtype == torch.bfloat16 else dict(atol=1e-5, rtol=1e-5)


def _options(weight):
    for red, w, eps in itertools.product(("mean", "sum", "none"), (None, weight), (0.0, 0.1)):
        yield dict(reduction=red, weight=w, label_smoothing=eps)


# ---- cases -----------------------------------------------------------------------------------------

def case_logits(rank, world, uneven=False, dtypes=("float32", "bfloat16"), device="cpu"):
    """Every reduction x weight x smoothing, ignore_index rows and an all-ignored batch, float32 and
    bfloat16, a (B, T, V) input: loss equal to torch's and lossext's, same bits on every rank,
    gradient equal to torch's on the slice."""
    import lossext
    import lossext.distributed as ld

    checked = 0
    for dn in dtypes:
        dtype = getattr(torch, dn)
        g = torch.Generator().manual_seed(1234)
        V = 37 if uneven else 13 * world
        N = 24
        start, vl = _slices(world, V, uneven)[rank]
        full = (torch.randn(N, V, generator=g) * 3).to(dtype)
        target = torch.randint(0, V, (N,), generator=g)
        target[::5] = -100
        weight = torch.rand(V, generator=g).to(dtype) + 0.1
        full, target, weight = full.to(device), target.to(device), weight.to(device)
        for opts, all_ignored in itertools.product(list(_options(weight)), (False, True)):
            t = torch.full_like(target, -100) if all_ignored else target
            xl = full[:, start:start + vl].clone().requires_grad_()
            loss = ld.vocab_parallel_cross_entropy(xl, t, vocab_start=start if uneven else None, **opts)
            go = torch.rand(loss.shape, generator=g).to(dtype).to(device) if opts["reduction"] == "none" else None
            loss.backward(go)
            _same_on_all_ranks(loss)
            xr = full.float().clone().requires_grad_()
            w32 = opts["weight"].float() if opts["weight"] is not None else None
            ref = F.cross_entropy(xr, t, weight=w32, reduction=opts["reduction"],
                                  label_smoothing=opts["label_smoothing"])
            ref.backward(go.float() if go is not None else None)
            ctx = f"{dn} {opts['reduction']} w={opts['weight'] is not None} eps={opts['label_smoothing']} " \
                  f"all_ignored={all_ignored}"
            assert loss.dtype == dtype, ctx
            torch.testing.assert_close(loss.float(), ref, equal_nan=True, **_tol(dtype), msg=ctx)
            torch.testing.assert_close(xl.grad.float(), xr.grad[:, start:start + vl], equal_nan=True, **_tol(dtype),
                                       msg=ctx)
            if dtype == torch.float32 and not all_ignored and device == "cpu":  # the single-process lossext loss
                one = lossext.functional.cross_entropy(full, t, weight=opts["weight"], reduction=opts["reduction"],
                                                       label_smoothing=opts["label_smoothing"])
                torch.testing.assert_close(loss, one, atol=1e-6, rtol=1e-6, msg=ctx)
            checked += 1
    # a (B, T, V_local) input with a (B, T) target
    g = torch.Generator().manual_seed(7)
    V = 37 if uneven else 13 * world
    start, vl = _slices(world, V, uneven)[rank]
    full = torch.randn(2, 5, V, generator=g).to(device)
    t = torch.randint(0, V, (2, 5), generator=g).to(device)
    xl = full[..., start:start + vl].clone().requires_grad_()
    loss = ld.vocab_parallel_cross_entropy(xl, t, vocab_start=start if uneven else None, reduction="none")
    assert loss.shape == (2, 5)
    torch.testing.assert_close(loss, F.cross_entropy(full.reshape(-1, V), t.reshape(-1), reduction="none").view(2, 5))
    return checked


def case_linear(rank, world, uneven=False, dtypes=("float32", "bfloat16"), device="cpu"):
    """The linear version against torch's linear + cross_entropy: loss, dx (all-reduced), the shard's
    dW and db, chunked (chunk_size 5 over 17 tokens) and not."""
    import lossext.distributed as ld

    checked = 0
    for dn in dtypes:
        dtype = getattr(torch, dn)
        g = torch.Generator().manual_seed(99)
        V = 29 if uneven else 11 * world
        N, H = 17, 8
        start, vl = _slices(world, V, uneven)[rank]
        x = torch.randn(N, H, generator=g).to(dtype)
        W = torch.randn(V, H, generator=g).to(dtype)
        b = torch.randn(V, generator=g).to(dtype)
        target = torch.randint(0, V, (N,), generator=g)
        target[3] = -100
        weight = (torch.rand(V, generator=g) + 0.1).to(dtype)
        x, W, b, target, weight = (u.to(device) for u in (x, W, b, target, weight))
        for opts, chunk, bias in itertools.product(list(_options(weight)), (5, None), (True, False)):
            xi = x.clone().requires_grad_()
            wl = W[start:start + vl].clone().requires_grad_()
            bl = b[start:start + vl].clone().requires_grad_() if bias else None
            loss = ld.vocab_parallel_linear_cross_entropy(xi, wl, target, linear_bias_shard=bl, chunk_size=chunk,
                                                          vocab_start=start if uneven else None, **opts)
            go = torch.rand(loss.shape, generator=g).to(dtype).to(device) if opts["reduction"] == "none" else None
            loss.backward(go)
            _same_on_all_ranks(loss)
            xr, Wr = x.float().clone().requires_grad_(), W.float().clone().requires_grad_()
            br = b.float().clone().requires_grad_() if bias else None
            w32 = opts["weight"].float() if opts["weight"] is not None else None
            ref = F.cross_entropy(F.linear(xr, Wr, br), target, weight=w32, reduction=opts["reduction"],
                                  label_smoothing=opts["label_smoothing"])
            ref.backward(go.float() if go is not None else None)
            ctx = f"{dn} {opts['reduction']} w={opts['weight'] is not None} eps={opts['label_smoothing']} " \
                  f"chunk={chunk} bias={bias}"
            tol = dict(atol=5e-2, rtol=5e-2) if dtype == torch.bfloat16 else dict(atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(loss.float(), ref, **tol, msg=ctx)
            torch.testing.assert_close(xi.grad.float(), xr.grad, **tol, msg=ctx)
            torch.testing.assert_close(wl.grad.float(), Wr.grad[start:start + vl], **tol, msg=ctx)
            if bias:
                torch.testing.assert_close(bl.grad.float(), br.grad[start:start + vl], **tol, msg=ctx)
            checked += 1
    return checked


def case_counting(rank, world):
    """Exactly one collective in the forward of both losses, none in the logits version's backward,
    one all-reduce (dx) in the linear version's backward; a second derivative raises."""
    import lossext.distributed as ld

    names = ["all_gather", "all_gather_into_tensor", "all_gather_single", "all_reduce", "broadcast", "reduce",
             "reduce_scatter", "reduce_scatter_tensor", "all_to_all", "all_to_all_single", "barrier", "send",
             "recv", "gather", "scatter", "all_gather_object", "broadcast_object_list"]
    calls = []
    saved = {}
    for n in names:
        fn = getattr(dist, n, None)
        if fn is None:
            continue
        saved[n] = fn

        def wrap(*a, _n=n, _fn=fn, **k):
            calls.append(_n)
            return _fn(*a, **k)
        setattr(dist, n, wrap)
    out = {}
    torch.manual_seed(0)  # the same target on every rank
    try:
        V, N, H = 8 * world, 6, 4
        x = torch.randn(N, 8, requires_grad=True)
        t = torch.randint(0, V, (N,))
        loss = ld.vocab_parallel_cross_entropy(x, t, label_smoothing=0.1)
        out["logits_forward"] = list(calls)
        calls.clear()
        loss.backward()
        out["logits_backward"] = list(calls)
        calls.clear()
        inp, w = torch.randn(N, H, requires_grad=True), torch.randn(8, H, requires_grad=True)
        loss = ld.vocab_parallel_linear_cross_entropy(inp, w, t, chunk_size=2)
        out["linear_forward"] = list(calls)
        calls.clear()
        loss.backward()
        out["linear_backward"] = list(calls)
        calls.clear()
    finally:
        for n, fn in saved.items():
            setattr(dist, n, fn)
    # double backward: a clear error, not a silent wrong answer
    x = torch.randn(N, 8, requires_grad=True)
    loss = ld.vocab_parallel_cross_entropy(x, t)
    try:
        torch.autograd.grad(loss, x, create_graph=True)
    except RuntimeError as e:
        out["double_backward"] = str(e)
    else:
        out["double_backward"] = None
    return out


def case_dtensor(rank, world):
    """A DTensor sharded on the vocabulary dim (Shard(-1) on a 1-D mesh) in place of a local slice:
    the same loss and gradient as the local slice with its group."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    import lossext.distributed as ld

    mesh = init_device_mesh("cpu", (world,))
    g = torch.Generator().manual_seed(5)
    V = 5 * world + 1  # uneven: torch.chunk's split
    full = torch.randn(10, V, generator=g)
    t = torch.randint(0, V, (10,), generator=g)
    dt = distribute_tensor(full, mesh, [Shard(1)]).requires_grad_()
    loss = ld.vocab_parallel_cross_entropy(dt, t, label_smoothing=0.2)
    loss.backward()
    xr = full.clone().requires_grad_()
    ref = F.cross_entropy(xr, t, label_smoothing=0.2)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(dt.grad.full_tensor(), xr.grad)
    # the LM head as a DTensor sharded on its rows
    H = 4
    inp = torch.randn(10, H, generator=g)
    W = torch.randn(V, H, generator=g)
    dw = distribute_tensor(W, mesh, [Shard(0)]).requires_grad_()
    xi = inp.clone().requires_grad_()
    loss = ld.vocab_parallel_linear_cross_entropy(xi, dw, t)
    loss.backward()
    xr, Wr = inp.clone().requires_grad_(), W.clone().requires_grad_()
    ref = F.cross_entropy(F.linear(xr, Wr), t)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(xi.grad, xr.grad)
    torch.testing.assert_close(dw.grad.full_tensor(), Wr.grad)
    return True


def case_errors(rank, world):
    """Bad targets raise as torch does (IndexError), on every rank, before any gradient."""
    import lossext.distributed as ld

    x = torch.randn(4, 6)
    out = {}
    for name, t in (("too_large", torch.tensor([0, 1, 6 * world, 2])), ("negative", torch.tensor([0, -3, 1, 2]))):
        try:
            ld.vocab_parallel_cross_entropy(x, t)
        except IndexError as e:
            out[name] = str(e)
        else:
            out[name] = None
    return out


def case_autocast(rank, world):
    """Under CPU autocast (bfloat16) the loss is float32 and equals torch's autocast result."""
    import lossext.distributed as ld

    g = torch.Generator().manual_seed(11)
    V = 6 * world
    full = torch.randn(8, V, generator=g).bfloat16()
    t = torch.randint(0, V, (8,), generator=g)
    w = torch.rand(V, generator=g).bfloat16() + 0.5
    xl = full[:, rank * 6:(rank + 1) * 6].clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ld.vocab_parallel_cross_entropy(xl, t, weight=w, label_smoothing=0.1)
        xr = full.clone().requires_grad_()
        ref = F.cross_entropy(xr, t, weight=w, label_smoothing=0.1)
    assert loss.dtype == ref.dtype == torch.float32, (loss.dtype, ref.dtype)
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    loss.backward()
    ref.backward()
    assert xl.grad.dtype == torch.bfloat16
    torch.testing.assert_close(xl.grad, xr.grad[:, rank * 6:(rank + 1) * 6], atol=1e-2, rtol=1e-2)
    H = 4
    inp, W = torch.randn(8, H, generator=g), torch.randn(V, H, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ld.vocab_parallel_linear_cross_entropy(inp, W[rank * 6:(rank + 1) * 6], t)
        ref = F.cross_entropy(F.linear(inp, W), t)
    assert loss.dtype == ref.dtype == torch.float32, (loss.dtype, ref.dtype)
    torch.testing.assert_close(loss, ref, atol=2e-2, rtol=2e-2)
    return True


def case_match(rank, world, uneven=False, device="cpu"):
    return case_logits(rank, world, uneven=uneven, device=device), case_linear(rank, world, uneven=uneven, device=device)


def case_misc(rank, world):
    return {"counting": case_counting(rank, world), "dtensor": case_dtensor(rank, world),
            "errors": case_errors(rank, world), "autocast": case_autocast(rank, world)}


CASES = {
    "match": case_match,
    "misc": case_misc,
    "logits": case_logits,
    "linear": case_linear,
    "counting": case_counting,
    "dtensor": case_dtensor,
    "errors": case_errors,
}
