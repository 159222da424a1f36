"""Peak memory of one forward+backward of the sigmoid focal loss at the RetinaNet case
(N=100000 anchors, C=80, float32, one-hot targets built before the measurement): lossext (given
the one-hot, and given the class indices: no one-hot at all) vs torchvision's composite (eager). CPU: the growth of the process's peak RSS over the inputs, each
variant in a fresh subprocess; CUDA: torch.cuda.max_memory_allocated over the inputs.

    PYTHONPATH=. python benchmarks/focal_memory.py [--device cuda]
"""
import argparse
import resource
import subprocess
import sys

CODE = r"""
import resource, sys, torch, torch.nn.functional as F
import lossext.functional as LF
from lossext._bench_focal import tv_sigmoid_focal_loss
dev, which = sys.argv[1], sys.argv[2]
g = torch.Generator(device=dev); g.manual_seed(0)
n, c = 100000, 80
x = torch.randn(n, c, device=dev, generator=g).requires_grad_()
cls = torch.randint(0, c + 1, (n,), device=dev, generator=g)
# the one-hot built in place (no int64 one_hot temporary raising the high-water mark before the measurement);
# the class-index variant never builds it (freed pages would hide its own allocations from ru_maxrss)
if which == "lossext-index":
    t = cls
else:
    t = torch.zeros(n, c + 1, device=dev).scatter_(1, cls.unsqueeze(1), 1.0)[:, :c]
f = LF.sigmoid_focal_loss if which.startswith("lossext") else tv_sigmoid_focal_loss
# warm-up of the kernels on a tiny problem (ru_maxrss is a high-water mark: no full-size warm-up)
f(x[:8].detach().requires_grad_(), t[:8], reduction="sum").backward()
if dev == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
else:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
f(x, t, reduction="sum").backward()
if dev == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() - base
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
print(peak)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    inputs = 2 * 100000 * 80 * 4
    print(f"| variant | peak f+b over inputs ({a.device}) | x inputs (x, one-hot t: {inputs / 2**20:.0f} MiB) |")
    print("|---|---|---|")
    for which, arg in (("lossext, one-hot targets", "lossext"), ("lossext, class-index targets", "lossext-index"),
                       ("torchvision composite, one-hot targets", "torchvision")):
        out = subprocess.run([sys.executable, "-c", CODE, a.device, arg], capture_output=True,
                             text=True, check=True).stdout.split()[-1]
        peak = int(out)
        print(f"| {which} | {peak / 2**20:.0f} MiB | {peak / inputs:.2f} |")


if __name__ == "__main__":
    main()
