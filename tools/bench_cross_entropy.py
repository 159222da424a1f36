"""Quick CPU timing of cross_entropy forward + backward (not a test).

    PYTHONPATH=. python tools/bench_cross_entropy.py [--compile] [--n 4096] [--c 32000] [--reps 5]

Leaf float32 logits requiring grad, int64 targets, loss.backward(); x.grad is reset before each
step (so a fresh gradient buffer is written every time, as in training). Reports, per variant, the
best wall time and the best process CPU time (user + sys, all threads) divided by the thread
count: on a machine shared with other work the latter is the steadier estimate of the wall time
the step would take alone. Then the per-call cost at N=64 (one thread, CPU time).
"""
import argparse
import resource
import time

import torch
import torch.nn.functional as F

import lossext.functional as LF


def cpu_time():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(step, reps):
    step()
    walls, cpus = [], []
    for _ in range(reps):
        c0, w0 = cpu_time(), time.perf_counter()
        step()
        walls.append(time.perf_counter() - w0)
        cpus.append(cpu_time() - c0)
    return min(walls), min(cpus)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--c", type=int, default=32000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(F.cross_entropy)")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    x = torch.randn(args.n, args.c, requires_grad=True)
    t = torch.randint(0, args.c, (args.n,))
    variants = {
        "torch eager": lambda: F.cross_entropy(x, t),
        "lossext": lambda: LF.cross_entropy(x, t),
        "lossext inplace_backward": lambda: LF.cross_entropy(x, t, inplace_backward=True),
    }
    if args.compile:
        variants["torch.compile"] = torch.compile(lambda: F.cross_entropy(x, t))
    print(f"cross_entropy float32 {args.n}x{args.c}, forward + backward, {threads} threads")
    for name, f in variants.items():
        def step():
            x.grad = None
            f().backward()
        wall, cpu = measure(step, args.reps)
        print(f"  {name:26s} wall {wall * 1e3:7.1f} ms   cpu/threads {cpu / threads * 1e3:7.1f} ms")

    torch.set_num_threads(1)
    print("per call at N=64 (1 thread, CPU time)")
    for c in (10, 1000):
        xs = torch.randn(64, c, requires_grad=True)
        ts = torch.randint(0, c, (64,))
        for name, f in (("torch eager", F.cross_entropy), ("lossext", LF.cross_entropy)):
            def fwd():
                return f(xs, ts)

            def fwd_bwd():
                xs.grad = None
                f(xs, ts).backward()
            res = []
            for step in (fwd, fwd_bwd):
                for _ in range(50):
                    step()
                best = min(measure_loop(step) for _ in range(5))
                res.append(best)
            print(f"  C={c:5d} {name:12s} forward {res[0] * 1e6:6.1f} us   forward+backward {res[1] * 1e6:6.1f} us")


def measure_loop(step, n=300):
    c0 = time.process_time()
    for _ in range(n):
        step()
    return (time.process_time() - c0) / n


if __name__ == "__main__":
    main()
