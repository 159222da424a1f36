"""Call overhead at small sizes (N=64): lossext against torch eager, microseconds per call.

    python benchmarks/overhead.py [name ...]

Forward under no_grad, and forward + backward (fresh .grad each time). Each pair of functions is
timed in alternating rounds by the calling thread's CPU time (time.thread_time: other tenants of a
noisy machine inflate wall time, not this), best round reported. At these sizes every loss runs on
one thread, so this is the Python + dispatcher + kernel cost of one call.
"""
import sys
import time
import warnings

import torch
import torch.nn.functional as F

import lossext.functional as LF


def timed_pair(fa, fb, n=300, rounds=15):
    for _ in range(50):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(rounds):
        for f, ts in ((fa, ta), (fb, tb)):
            t0 = time.thread_time()
            for _ in range(n):
                f()
            ts.append((time.thread_time() - t0) / n)
    return min(ta) * 1e6, min(tb) * 1e6


def cases():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, generator=g), torch.rand(64, generator=g)
    xc, tc = torch.randn(64, 1000, generator=g), torch.randint(0, 1000, (64,), generator=g)
    return {
        "binary_cross_entropy_with_logits": (x, y),
        "binary_cross_entropy": (y.clamp(0.01, 0.99), torch.rand(64, generator=g)),
        "l1_loss": (x, y),
        "mse_loss": (x, y),
        "huber_loss": (x, y),
        "kl_div": (x, y),
        "cross_entropy": (xc, tc),
        "nll_loss": (xc, tc),
        "multilabel_soft_margin_loss": (torch.randn(64, 100, generator=g),
                                        (torch.rand(64, 100, generator=g) > 0.5).float()),
        "smooth_l1_loss": (x, y),
        "soft_margin_loss": (x, torch.sign(y - 0.5)),
        "poisson_nll_loss": (x, y),
        "gaussian_nll_loss": (x, y, torch.rand(64, generator=g) + 0.5),
        "hinge_embedding_loss": (x, torch.sign(y - 0.5)),
        "margin_ranking_loss": (x, y, torch.sign(y - 0.5)),
        "multi_margin_loss": (torch.randn(64, 10, generator=g), torch.randint(0, 10, (64,), generator=g)),
        "multilabel_margin_loss": (torch.randn(64, 10, generator=g), torch.randint(-1, 10, (64, 10), generator=g)),
        "cosine_embedding_loss": (torch.randn(64, 16, generator=g), torch.randn(64, 16, generator=g),
                                  torch.sign(y - 0.5)),
        "triplet_margin_loss": tuple(torch.randn(64, 16, generator=g) for _ in range(3)),
        "ctc_loss": (torch.randn(20, 4, 8, generator=g).log_softmax(2), torch.randint(1, 8, (4, 6), generator=g),
                     torch.full((4,), 20), torch.full((4,), 6)),
    }


def main(names):
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, N=64, microseconds per call (thread CPU time, best of 15 rounds)")
    print(f"{'loss':34s} {'fwd torch':>10s} {'fwd lossext':>12s} {'f+b torch':>10s} {'f+b lossext':>12s}")
    for name, args in cases().items():
        if names and name not in names:
            continue
        fns = {}
        for lib, mod in (("torch", F), ("lossext", LF)):
            f = getattr(mod, name)
            leaf = args[0].detach().requires_grad_()

            def fwd(f=f):
                with torch.no_grad():
                    f(*args)

            def fwd_bwd(f=f, leaf=leaf):
                leaf.grad = None
                f(leaf, *args[1:]).backward()

            fns[lib] = (fwd, fwd_bwd)
        a = timed_pair(fns["torch"][0], fns["lossext"][0])
        b = timed_pair(fns["torch"][1], fns["lossext"][1])
        print(f"{name:34s} {a[0]:10.1f} {a[1]:12.1f} {b[0]:10.1f} {b[1]:12.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
