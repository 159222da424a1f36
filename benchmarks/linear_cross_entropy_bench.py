"""Time and peak memory of the LM head + cross-entropy, forward + backward, on the CPU:
lossext.functional.linear_cross_entropy, torch's reference path (options=None), torch's chunked
path (options=LinearCrossEntropyOptions()), and the three matmuls alone (the floor:
x W^T, dlogits W, dlogits^T x).

Each (case, implementation) runs in a fresh subprocess; peak memory is the subprocess' peak
resident set (VmHWM) minus its resident set just before the call (the inputs exist), minus the
bytes of the two gradients (dx, dW) every implementation returns and autograd adopts as .grad: the
memory "above the inputs and their gradients". One warm-up call on a small problem first.

    PYTHONPATH=. python benchmarks/linear_cross_entropy_bench.py [--quick] [--reps 1]
"""
import argparse
import json
import os
import subprocess
import sys
import time

CASES = [(4096, 1024, 32000), (2048, 2048, 128256)]
IMPLS = ["lossext", "torch_ref", "torch_chunked", "matmuls"]


def _vmhwm_rss():
    hwm = rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return hwm, rss


def _reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(impl, N, H, V, dtype_name, reps):
    import torch
    import torch.nn.functional as F
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    x = (torch.randn(N, H) ).to(dtype).requires_grad_()
    w = (torch.randn(V, H) / H ** 0.5).to(dtype).requires_grad_()
    t = torch.randint(0, V, (N,))
    def make(x, w, t):
        if impl == "lossext":
            import lossext.functional as LF
            return lambda: LF.linear_cross_entropy(x, w, t)
        if impl == "torch_ref":
            return lambda: F.linear_cross_entropy(x, w, t)
        if impl == "torch_chunked":
            opts = torch.nn.LinearCrossEntropyOptions()
            return lambda: F.linear_cross_entropy(x, w, t, options=opts)

        def fn():  # the floor: the three matmuls of the head, no loss
            with torch.no_grad():
                lg = x @ w.t()
                gx = lg @ w
                gw = lg.t() @ x
                del gx, gw
            return None
        return fn

    # Warm-up on a small problem of the same dtype (first-call costs: library loading, op registration).
    xs, ws = x[:64, :64].detach().clone().requires_grad_(), w[:512, :64].detach().clone().requires_grad_()
    loss = make(xs, ws, t[:64] % 512)()
    if loss is not None:
        loss.backward()
    del xs, ws, loss
    fn = make(x, w, t)
    times = []
    peak = 0
    for _ in range(reps):
        x.grad = w.grad = None  # autograd adopts each implementation's fresh gradient buffers
        import gc
        gc.collect()
        _reset_hwm()
        _, base = _vmhwm_rss()
        t0 = time.perf_counter()
        loss = fn()
        if loss is not None:
            loss.backward()
        times.append(time.perf_counter() - t0)
        hwm, _ = _vmhwm_rss()
        grads = x.numel() * x.element_size() + w.numel() * w.element_size()  # the gradients themselves
        peak = max(peak, hwm - base - grads)
        del loss
    print(json.dumps({"time": min(times), "peak": peak}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="small shapes (a smoke test)")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--case", default=None, help="one case N,H,V")
    args = ap.parse_args()
    cases = [(512, 256, 4000)] if args.quick else CASES
    if args.case:
        cases = [tuple(int(v) for v in args.case.split(","))]
    rows = []
    for N, H, V in cases:
        for dt in args.dtypes.split(","):
            res = {}
            for impl in args.impls.split(","):
                out = subprocess.run([sys.executable, __file__, "--child", impl, str(N), str(H), str(V), dt,
                                      str(args.reps)], capture_output=True, text=True, env=os.environ)
                if out.returncode != 0:
                    res[impl] = None
                    print(f"# {impl} {N} {H} {V} {dt} failed: {out.stderr[-400:]}", file=sys.stderr)
                    continue
                res[impl] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"# {N} {H} {V} {dt} {impl}: {res[impl]}", file=sys.stderr, flush=True)
            rows.append((N, H, V, dt, res))
    print("| N | H | V | dtype | impl | time (s) | x floor | peak above inputs+grads (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for N, H, V, dt, res in rows:
        floor = res.get("matmuls")
        for impl in IMPLS:
            r = res.get(impl)
            if r is None:
                continue
            ratio = f"{r['time'] / floor['time']:.2f}" if floor else "-"
            print(f"| {N} | {H} | {V} | {dt} | {impl} | {r['time']:.2f} | {ratio} | {r['peak'] / 2**20:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        child(a[0], int(a[1]), int(a[2]), int(a[3]), a[4], int(a[5]))
    else:
        main()
