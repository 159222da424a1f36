"""Forward+backward timings of poisson_nll_loss, gaussian_nll_loss and kl_div: lossext vs torch
eager vs torch.compile (leaf inputs requiring grad, loss.backward()).

usage: python tools/bench_nll_divergence.py [--n 16777216] [--reps 9] [--device cpu|cuda] [--no-compile]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import lossext.functional as LF


def cases(n, device):
    rows = 4096
    shape = (rows, n // rows)
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape, generator=g).to(device)
    t = (torch.rand(shape, generator=g) * 4).to(device)
    xp = torch.rand(shape, generator=g).to(device) + 0.1
    v_full = torch.rand(shape, generator=g).to(device) + 0.1
    v_row = torch.rand(rows, 1, generator=g).to(device) + 0.1
    return [
        ("poisson_nll_loss", "poisson_nll_loss", (x, t), {}),
        ("poisson_nll_loss log_input=False full", "poisson_nll_loss", (xp, t), dict(log_input=False, full=True)),
        ("gaussian_nll_loss var=input shape", "gaussian_nll_loss", (x, t, v_full), {}),
        ("gaussian_nll_loss var=(rows, 1)", "gaussian_nll_loss", (x, t, v_row), {}),
        ("kl_div batchmean", "kl_div", (x, xp), dict(reduction="batchmean")),
        ("kl_div log_target batchmean", "kl_div", (x, x), dict(reduction="batchmean", log_target=True)),
    ]


def make_step(fn, args, device):
    leaves = [a.clone().requires_grad_() for a in args]

    def step():
        for a in leaves:
            a.grad = None
        fn(*leaves).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {args.device}, threads {torch.get_num_threads()}, n = {args.n}, "
          f"float32, forward+backward; the variants run interleaved, median (min) of {args.reps}, ms")
    print(f"{'case':40s} {'lossext':>14s} {'eager':>14s} {'compile':>14s}")
    for name, fname, tensors, kw in cases(args.n, args.device):
        ours, ref = getattr(LF, fname), getattr(F, fname)
        fns = [lambda *a: ours(*a, **kw), lambda *a: ref(*a, **kw)]
        if not args.no_compile:
            torch._dynamo.reset()
            fns.append(torch.compile(lambda *a: ref(*a, **kw)))
        steps = [make_step(f, tensors, args.device) for f in fns]
        for s in steps:  # warm-up (and compilation)
            s()
            s()
        times = [[] for _ in steps]
        for _ in range(args.reps):  # interleaved: load changes hit every variant alike
            for s, ts in zip(steps, times):
                t0 = time.perf_counter()
                s()
                ts.append((time.perf_counter() - t0) * 1e3)
        print(f"{name:40s} " + " ".join(f"{statistics.median(ts):7.1f} ({min(ts):4.0f})" for ts in times), flush=True)


if __name__ == "__main__":
    main()
