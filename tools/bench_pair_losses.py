"""Forward + backward time of l1/mse/huber/smooth_l1/soft_margin: lossext vs torch eager and
torch.compile, on float32 at N elements (default 16M); leaf input requiring grad, target without,
reduction mean, loss.backward(). Prints the median of --reps runs (ms) and the byte floor
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


def bench(fn, x, t, reps, device):
    def step():
        x.grad = None
        fn(x, t).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


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
    print(f"{'loss':18s} {'lossext':>9s} {'eager':>9s} {'compile':>9s}   (ms, median of {args.reps})")
    for name in args.losses.split(","):
        ours = bench(getattr(LF, name), x, t, args.reps, args.device)
        eager = bench(getattr(F, name), x, t, args.reps, args.device)
        comp = float("nan")
        if not args.no_compile:
            torch._dynamo.reset()
            comp = bench(torch.compile(getattr(F, name)), x, t, args.reps, args.device)
        print(f"{name:18s} {ours:9.1f} {eager:9.1f} {comp:9.1f}   lossext/floor {ours / floor:.2f}")


if __name__ == "__main__":
    main()
