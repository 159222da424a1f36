"""Vocab-parallel cross-entropy on the CPU over gloo: lossext.distributed.vocab_parallel_cross_entropy
against Megatron's algorithm written in plain torch.distributed (three all-reduces: MAX of the row
maxima, SUM of the target logits, SUM of the exponentials; the shard upcast to float32), forward +
backward of the mean loss, per step. 2 ranks (one thread each), N tokens, V = 2 x V_local.

Time: the median over --reps steps after 2 warm-up steps, rank 0's wall clock (the ranks finish a step
together). Bytes: per rank and step, the payload handed to the collectives (counted by wrapping them)
and the bytes each rank sends under the ring algorithms (all_gather: (P-1)/P of the output;
all_reduce: 2 (P-1)/P of the buffer).

    PYTHONPATH=. python benchmarks/vocab_parallel_bench.py [--n 4096] [--v-local 32000] [--reps 10]
"""
import argparse
import json
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class _MegatronCE(torch.autograd.Function):
    """Megatron-LM's _VocabParallelCrossEntropy (tensor_parallel/cross_entropy.py), reduction none."""

    @staticmethod
    def forward(ctx, logits, target, start, group):
        x = logits.float()
        m = x.max(dim=-1).values
        dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
        x = x - m.unsqueeze(-1)
        end = start + x.shape[-1]
        outside = (target < start) | (target >= end)
        local = (target - start).masked_fill(outside, 0)
        pred = x.gather(1, local.unsqueeze(1)).squeeze(1).masked_fill(outside, 0.0)
        dist.all_reduce(pred, group=group)
        e = x.exp()
        s = e.sum(dim=-1)
        dist.all_reduce(s, group=group)
        loss = s.log() - pred
        e.div_(s.unsqueeze(-1))
        ctx.save_for_backward(e, local, outside)
        ctx.dtype = logits.dtype
        return loss

    @staticmethod
    def backward(ctx, go):
        softmax, local, outside = ctx.saved_tensors
        g = softmax
        rows = torch.arange(g.shape[0])
        g[rows, local] -= (~outside).float()
        g.mul_(go.unsqueeze(-1))
        return g.to(ctx.dtype), None, None, None


def _counting(counter):
    orig = {}
    for name in ("all_reduce", "all_gather_into_tensor", "all_gather_single"):
        fn = getattr(dist, name, None)
        if fn is None:
            continue
        orig[name] = fn

        def wrap(*a, _n=name, _fn=fn, **k):
            counter.append((_n, a[0].numel() * a[0].element_size()))
            return _fn(*a, **k)
        setattr(dist, name, wrap)
    return orig


def _ring_sent(name, nbytes, world):
    return nbytes * 2 * (world - 1) / world if name == "all_reduce" else nbytes * (world - 1) / world


def worker(rank, world, port, args, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    import lossext.distributed as ld

    results = []
    for dn in args.dtypes.split(","):
        dtype = getattr(torch, dn)
        g = torch.Generator().manual_seed(0)
        V = world * args.v_local
        start = rank * args.v_local
        full_t = torch.randint(0, V, (args.n,), generator=g)
        logits = torch.randn(args.n, args.v_local, generator=torch.Generator().manual_seed(rank + 1)).to(dtype)
        for impl in ("lossext", "megatron"):
            x = logits.clone().requires_grad_()

            def step():
                x.grad = None
                if impl == "lossext":
                    loss = ld.vocab_parallel_cross_entropy(x, full_t)
                else:
                    loss = _MegatronCE.apply(x, full_t, start, None).mean()
                loss.backward()
                return loss

            for _ in range(2):
                step()
            counter = []
            orig = _counting(counter)
            step()
            for n, fn in orig.items():
                setattr(dist, n, fn)
            times = []
            for _ in range(args.reps):
                dist.barrier()
                t0 = time.perf_counter()
                loss = step()
                times.append(time.perf_counter() - t0)
            results.append(dict(impl=impl, dtype=dn, time_ms=1e3 * statistics.median(times),
                                collectives=len(counter), payload=sum(b for _, b in counter),
                                sent=sum(_ring_sent(n, b, world) for n, b in counter), loss=float(loss.detach())))
    if rank == 0:
        with open(out, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--v-local", type=int, default=32000)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = f"/tmp/vocab_parallel_bench_{os.getpid()}.json"
    mp.spawn(worker, args=(2, port, args, out), nprocs=2)
    with open(out) as f:
        res = json.load(f)
    os.remove(out)
    print(f"torch {torch.__version__}; gloo, 2 ranks x 1 thread; N={args.n} V=2x{args.v_local}; "
          f"median of {args.reps} steps (forward + backward)\n")
    print("| dtype | impl | time/step (ms) | collectives | payload/rank (KiB) | sent/rank, ring (KiB) | loss |")
    print("|---|---|---|---|---|---|---|")
    for r in res:
        print(f"| {r['dtype']} | {r['impl']} | {r['time_ms']:.1f} | {r['collectives']} | {r['payload'] / 1024:.0f} | "
              f"{r['sent'] / 1024:.0f} | {r['loss']:.6f} |")


if __name__ == "__main__":
    main()
