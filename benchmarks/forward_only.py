"""Forward only (no_grad, evaluation) of the pointwise losses at 16M float32 elements on the CPU:
lossext against torch.compile. Minimum of the repetitions, the libraries interleaved
round by round, so a noisy neighbour slows both alike. (Issue 15: forward-only ahead of compile.)

    PYTHONPATH=. python benchmarks/forward_only.py [--reps 25] [--rounds 3]
"""
import argparse
import time

import torch
import torch.nn.functional as F

import lossext.functional as LF

LOSSES = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "soft_margin_loss", "poisson_nll_loss",
          "binary_cross_entropy_with_logits", "binary_cross_entropy", "margin_ranking_loss", "hinge_embedding_loss"]


def inputs(name, n, g):
    x = torch.randn(n, generator=g)
    if name == "soft_margin_loss" or name == "hinge_embedding_loss":
        return (x, torch.randn(n, generator=g).sign())
    if name == "binary_cross_entropy_with_logits":
        return (x, torch.rand(n, generator=g))
    if name == "binary_cross_entropy":
        return (torch.rand(n, generator=g).clamp(1e-6, 1 - 1e-6), torch.rand(n, generator=g))
    if name == "margin_ranking_loss":
        return (x, torch.randn(n, generator=g), torch.randn(n, generator=g).sign())
    return (x, torch.randn(n, generator=g))


def best(fn, args, reps):
    with torch.no_grad():
        for _ in range(3):
            fn(*args)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(*args)
            ts.append(time.perf_counter() - t0)
    return min(ts) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=1 << 24)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n = {args.n}, min of {args.reps} x {args.rounds} rounds")
    print("| loss | lossext | torch.compile | compile / lossext | GB/s lossext |")
    print("|---|---|---|---|---|")
    for name in LOSSES:
        a = inputs(name, args.n, g)
        torch._dynamo.reset()  # (one compiled function per loss: no recompile limit)
        comp = torch.compile(getattr(F, name))
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(best(getattr(LF, name), a, args.reps))
            theirs.append(best(comp, a, args.reps))
        o, c = min(ours), min(theirs)
        gbs = sum(t.numel() * t.element_size() for t in a) / (o * 1e-3) / 1e9  # bytes read once
        print(f"| {name} | {o:.2f} ms | {c:.2f} ms | {c / o:.2f}x | {gbs:.1f} |", flush=True)


if __name__ == "__main__":
    main()
