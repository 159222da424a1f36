"""Forward + backward time of l1/mse/huber/smooth_l1/soft_margin: lossext vs torch eager and
torch.compile, on float32 at N elements (default 16M); leaf input requiring grad, target without,
reduction mean, loss.backward(). Prints the median and min of --reps runs (ms; implementations interleaved) and the byte floor
(read input and target, write the gradient) at --bandwidth GB/s.

usage: python tools/bench_pair_losses.py [--n 16777216] [--reps 15] [--device cpu] [--bandwidth 7]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import lossext.functional as LF

LOSSES = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "soft_margin_loss"]


def bench(fns, x, t, reps, device):
    """Times each of `fns` (forward + backward), interleaved rep by rep so that a change in the
    machine's load affects every implementation alike. Returns [(median, min)] in ms."""
    def step(fn):
        x.grad = None
        fn(x, t).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    for fn in fns:
        for _ in range(3):
            step(fn)
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            step(fn)
            times[i].append((time.perf_counter() - t0) * 1e3)
    return [(statistics.median(ts), min(ts)) for ts in times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bandwidth", type=float, default=7.0, help="GB/s for the byte floor")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--losses", default=",".join(LOSSES))
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.n, device=args.device, requires_grad=True)
    t = torch.randn(args.n, device=args.device)
    floor = 3 * 4 * args.n / (args.bandwidth * 1e9) * 1e3
    print(f"torch {torch.__version__}, {args.device}, threads {torch.get_num_threads()}, n = {args.n}, "
          f"float32; byte floor {floor:.1f} ms at {args.bandwidth} GB/s")
    print(f"{'loss':18s} {'lossext':>13s} {'eager':>13s} {'compile':>13s}   ms: median / min of {args.reps}")
    for name in args.losses.split(","):
        fns = [getattr(LF, name), getattr(F, name)]
        if not args.no_compile:
            torch._dynamo.reset()
            fns.append(torch.compile(getattr(F, name)))
        res = bench(fns, x, t, args.reps, args.device) + [(float("nan"), float("nan"))]
        cols = " ".join(f"{m:6.1f} /{lo:5.1f}" for m, lo in res[:3])
        print(f"{name:18s} {cols}   lossext/floor {res[0][0] / floor:.2f} (min {res[0][1] / floor:.2f})")

if __name__ == "__main__":
    main()
