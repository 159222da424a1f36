"""The main job: lossext against torch, every implemented loss, on every available device.

    python -m lossext.bench                 # CPU (and CUDA when present), small + large sizes
    python -m lossext.bench --quick         # small sizes only
    python -m lossext.bench --only cross_entropy,mse_loss --device cuda --out report.md
    python -m lossext.bench --plot bench.png  # also a figure (needs matplotlib: lossext[plot])

For each case it prints the parity (max error of lossext and of torch eager against a float64
reference, for the loss and every gradient) and the median time of the forward and of
forward+backward for lossext, torch eager and torch.compile(torch's function), with speedups.
Forward+backward means: a fresh leaf input requiring grad, loss = f(...), loss.backward().
GB/s counts the fewest bytes the step must move (inputs read once, gradients written once); on a
GPU the last column is that rate over the measured device-to-device copy bandwidth.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import gc
import math
import os
import platform
import statistics
import sys
import time
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

import lossext
import lossext.functional as LF


@dataclasses.dataclass
class Case:
    loss: str                      # name in torch.nn.functional and lossext.functional
    label: str                     # shape/options shown in the table
    make: Callable                 # (device, dtype, gen) -> (args, kwargs, diff positions)
    dtype: torch.dtype = torch.float32
    large: bool = False
    devices: tuple = ("cpu", "cuda")
    ours_kwargs: Optional[dict] = None   # extra keyword arguments for lossext only
    torch_fn: Optional[Callable] = None  # torch's side where torch.nn.functional has no such loss
    # lossext's side where it is not lossext.functional.<loss> of the same args (the class-index
    # sigmoid focal loss, given the indices, against torch's side given the one-hot built from them)
    ours_fn: Optional[Callable] = None


def _g(device, seed=0):
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _randn(shape, device, dtype, g, scale=1.0):
    return (torch.randn(shape, device=device, generator=g, dtype=torch.float32) * scale).to(dtype)


def _rand(shape, device, dtype, g, lo=0.0, hi=1.0):
    return (torch.rand(shape, device=device, generator=g, dtype=torch.float32) * (hi - lo) + lo).to(dtype)


def _cls(n, c, device, g):
    return torch.randint(0, c, (n,), device=device, generator=g)


def _pair(shape, **kw):
    """Cases for losses of (input, target) of one shape."""
    def make(device, dtype, g):
        return [_randn(shape, device, dtype, g), _randn(shape, device, dtype, g)], kw, (0,)
    return make


def _cases() -> List[Case]:
    M = 1 << 24  # 16M elements
    cs = []

    def add(loss, label, make, small, large, cuda_large=None, dtype=torch.float32, cuda_dtype=None):
        cs.append(Case(loss, label.format(*small), make(*small), dtype))
        cs.append(Case(loss, label.format(*large), make(*large), dtype, large=True, devices=("cpu",)))
        if cuda_large is not None:
            cs.append(Case(loss, label.format(*cuda_large), make(*cuda_large), cuda_dtype or dtype, large=True,
                           devices=("cuda",)))

    def ce(n, c):
        def make(device, dtype, g):
            return [_randn((n, c), device, dtype, g, 2.0), _cls(n, c, device, g)], {}, (0,)
        return make

    add("cross_entropy", "{}x{}", ce, (64, 1000), (4096, 32000), (16384, 128256), cuda_dtype=torch.bfloat16)
    for c in cs[-3:]:
        cs.append(dataclasses.replace(c, label=c.label + " inplace_backward", ours_kwargs={"inplace_backward": True}))

    def ce_smooth(n, c):
        def make(device, dtype, g):
            w = _rand((c,), device, dtype, g, 0.5, 1.5)
            return [_randn((n, c), device, dtype, g, 2.0), _cls(n, c, device, g)], \
                {"weight": w, "label_smoothing": 0.1}, (0,)
        return make

    add("cross_entropy", "{}x{} weight+smoothing", ce_smooth, (64, 1000), (4096, 32000))

    def ce_seg(n, c, h, w):
        def make(device, dtype, g):
            t = torch.randint(0, c, (n, h, w), device=device, generator=g)
            return [_randn((n, c, h, w), device, dtype, g), t], {}, (0,)
        return make

    add("cross_entropy", "{}x{}x{}x{} (segmentation)", ce_seg, (2, 21, 16, 16), (8, 21, 256, 256),
        (32, 21, 512, 512))

    def nll(n, c):
        def make(device, dtype, g):
            return [_randn((n, c), device, dtype, g), _cls(n, c, device, g)], {}, (0,)
        return make

    add("nll_loss", "{}x{}", nll, (64, 1000), (4096, 32000), (16384, 128256))

    def bce_logits(n):
        def make(device, dtype, g):
            return [_randn((n,), device, dtype, g, 3.0), _rand((n,), device, dtype, g)], {}, (0,)
        return make

    add("binary_cross_entropy_with_logits", "{}", bce_logits, (64,), (M,), (16 * M,))

    def bce_logits_pw(n, c):
        def make(device, dtype, g):
            return [_randn((n, c), device, dtype, g, 3.0), _rand((n, c), device, dtype, g)], \
                {"pos_weight": _rand((c,), device, dtype, g, 0.5, 2.0)}, (0,)
        return make

    add("binary_cross_entropy_with_logits", "{}x{} pos_weight", bce_logits_pw, (64, 16), (16384, 1024))

    def bce(n):
        def make(device, dtype, g):
            return [_rand((n,), device, dtype, g, 0.01, 0.99), _rand((n,), device, dtype, g)], {}, (0,)
        return make

    add("binary_cross_entropy", "{}", bce, (64,), (M,), (16 * M,))

    def mlsm(n, c):
        def make(device, dtype, g):
            return [_randn((n, c), device, dtype, g), (_rand((n, c), device, dtype, g) > 0.5).to(dtype)], {}, (0,)
        return make

    add("multilabel_soft_margin_loss", "{}x{}", mlsm, (64, 100), (16384, 1024), (262144, 1024))

    for name in ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss"):
        add(name, "{}", lambda n: _pair((n,)), (64,), (M,), (16 * M,))

    def soft_margin(n):
        def make(device, dtype, g):
            y = torch.where(_rand((n,), device, torch.float32, g) > 0.5, 1.0, -1.0).to(dtype)
            return [_randn((n,), device, dtype, g), y], {}, (0,)
        return make

    add("soft_margin_loss", "{}", soft_margin, (64,), (M,), (16 * M,))

    def poisson(n):
        def make(device, dtype, g):
            return [_randn((n,), device, dtype, g), _rand((n,), device, dtype, g, 0, 4)], {}, (0,)
        return make

    add("poisson_nll_loss", "{}", poisson, (64,), (M,), (16 * M,))

    def gauss(n):
        def make(device, dtype, g):
            return [_randn((n,), device, dtype, g), _randn((n,), device, dtype, g),
                    _rand((n,), device, dtype, g, 0.1, 2.0)], {}, (0, 2)
        return make

    add("gaussian_nll_loss", "{}", gauss, (64,), (M,), (16 * M,))

    def kl(n, c):
        def make(device, dtype, g):
            x = _randn((n, c), device, dtype, g)
            return [x, _rand((n, c), device, dtype, g)], {"reduction": "batchmean"}, (0,)
        return make

    add("kl_div", "{}x{} batchmean", kl, (64, 16), (16384, 1024), (262144, 1024))

    def signs(n, device, g):
        return torch.where(_rand((n,), device, torch.float32, g) > 0.5, 1.0, -1.0)

    def margin_ranking(n):
        def make(device, dtype, g):
            x1, x2 = _randn((n,), device, dtype, g), _randn((n,), device, dtype, g)
            return [x1, x2, signs(n, device, g).to(dtype)], {"margin": 0.1}, (0, 1)
        return make

    add("margin_ranking_loss", "{}", margin_ranking, (64,), (M,), (16 * M,))

    def hinge(n):
        def make(device, dtype, g):
            return [_randn((n,), device, dtype, g, 2.0), signs(n, device, g).to(dtype)], {}, (0,)
        return make

    add("hinge_embedding_loss", "{}", hinge, (64,), (M,), (16 * M,))

    def multi_margin(n, c):
        def make(device, dtype, g):
            return [_randn((n, c), device, dtype, g), _cls(n, c, device, g)], {}, (0,)
        return make

    add("multi_margin_loss", "{}x{}", multi_margin, (64, 100), (16384, 100), (262144, 100))
    add("multi_margin_loss", "{}x{}", multi_margin, (64, 1000), (4096, 1000), (65536, 1000))

    def multilabel_margin(n, c, k):
        def make(device, dtype, g):
            # k distinct target classes per row, then -1 (the rest of the row is never read)
            t = torch.rand((n, c), device=device, generator=g).argsort(1)
            t[:, k:] = -1
            return [_randn((n, c), device, dtype, g), t], {}, (0,)
        return make

    add("multilabel_margin_loss", "{}x{} ({} targets)", multilabel_margin, (64, 100, 5), (16384, 100, 5),
        (262144, 100, 5))
    def cosine(n, d):
        def make(device, dtype, g):
            x1 = _randn((n, d), device, dtype, g)
            x2 = (x1.float() + _randn((n, d), device, torch.float32, g)).to(dtype)
            return [x1, x2, signs(n, device, g).to(dtype)], {"margin": 0.1}, (0, 1)
        return make

    add("cosine_embedding_loss", "{}x{}", cosine, (64, 128), (65536, 128), (1 << 20, 128))

    def triplet(n, d, **kw):
        def make(device, dtype, g):
            a = _randn((n, d), device, dtype, g)
            p = (a.float() + _randn((n, d), device, torch.float32, g, 0.8)).to(dtype)
            q = (a.float() + _randn((n, d), device, torch.float32, g, 1.2)).to(dtype)
            return [a, p, q], kw, (0, 1, 2)
        return make

    add("triplet_margin_loss", "{}x{}", triplet, (64, 128), (65536, 128), (1 << 20, 128))
    add("triplet_margin_loss", "{}x{} swap p=1", lambda n, d: triplet(n, d, swap=True, p=1.0), (64, 128),
        (65536, 128))
    from ._bench_linear_ce import cases as _lce_cases  # linear_cross_entropy (its own module)
    cs += _lce_cases(Case, _randn, _cls)
    from ._bench_focal import focal_cases  # the focal losses' cases (torch's side: their composites)
    cs += focal_cases(Case, _randn, _g)
    from . import _bench_ctc  # noqa: E402  (ctc_loss's cases; its own module)
    cs += _bench_ctc.cases(Case)
    return cs


# ---------------------------------------------------------------------------------------------
# timing


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


_STAT = statistics.median  # --best: min (the best of the repetitions, for a machine shared with other jobs)


def _time(fn, device, budget_s, min_reps=3, max_reps=50):
    """Median (or, with --best, minimum) wall time of fn() in seconds (after one warm-up)."""
    fn()
    _sync(device)
    times = []
    t_end = time.perf_counter() + budget_s
    while len(times) < min_reps or (time.perf_counter() < t_end and len(times) < max_reps):
        if device == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return _STAT(times)


def _fwd_bwd(f, args, kwargs, diff):
    leaves = [a.detach().requires_grad_(True) if i in diff else a for i, a in enumerate(args)]

    def step():
        for i in diff:
            leaves[i].grad = None
        out = f(*leaves, **kwargs)
        out.backward()
        return out

    return step


def _fwd(f, args, kwargs):
    def step():
        with torch.no_grad():
            return f(*args, **kwargs)
    return step


def _err(a, ref):
    a, ref = a.detach().double().cpu(), ref.detach().double().cpu()
    scale = max(ref.abs().max().item() if ref.numel() else 0.0, 1e-30)
    return (a - ref).abs().max().item() / scale if ref.numel() else 0.0


def _shrink(args, limit=1 << 24):
    """For parity only: the first rows of every argument sharing the leading dimension, so the
    float64 reference of a huge case fits in memory."""
    n = args[0].shape[0] if args[0].dim() else 0
    if args[0].numel() <= limit or n <= 1:
        return args
    rows = max(1, n * limit // args[0].numel())
    return [a[:rows] if a.dim() and a.shape[0] == n else a for a in args]


def _parity(f, args, kwargs, diff, ref):
    """Max relative error of f against the float64 reference, over the loss and its gradients."""
    args = _shrink(args)
    ref_args = [a.detach().double() if a.is_floating_point() else a for a in args]
    ref_kw = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in kwargs.items()}
    leaves = [a.detach().clone().requires_grad_(i in diff) if a.is_floating_point() else a for i, a in enumerate(args)]
    rleaves = [a.clone().requires_grad_(i in diff) if a.is_floating_point() else a for i, a in enumerate(ref_args)]
    out = f(*leaves, **kwargs)
    rout = ref(*rleaves, **ref_kw)
    gs = torch.autograd.grad(out, [leaves[i] for i in diff])
    rgs = torch.autograd.grad(rout, [rleaves[i] for i in diff])
    return max([_err(out, rout)] + [_err(a, b) for a, b in zip(gs, rgs)])


def _min_bytes(args, kwargs, diff):
    n = sum(a.numel() * a.element_size() for a in args)
    n += sum(v.numel() * v.element_size() for v in kwargs.values() if isinstance(v, torch.Tensor))
    n += sum(args[i].numel() * args[i].element_size() for i in diff)
    return n


def copy_bandwidth(device):
    """Bytes/s of a large tensor copy into an existing buffer (read + write counted)."""
    n = (1 << 28) if device == "cuda" else (1 << 26)
    a = torch.randn(n, device=device)
    b = torch.empty_like(a)
    t = _time(lambda: b.copy_(a), device, 0.5)
    return 2 * a.numel() * a.element_size() / t


# ---------------------------------------------------------------------------------------------


def _fmt_t(s):
    if s is None or math.isnan(s):
        return "-"
    return f"{s * 1e3:.2f}ms" if s < 1 else f"{s:.2f}s"


def _fmt_x(a, b):
    if a is None or b is None or a != a or b != b or a == 0:
        return "-"
    return f"{b / a:.2f}x"


def run(devices, quick, only, budget, use_compile, out_path, large_only=False):
    cases = [c for c in _cases() if hasattr(LF, c.loss) and (not only or c.loss in only)
             and (not quick or not c.large) and (not large_only or c.large)]
    rows = []
    jobs = [(d, c) for d in devices for c in cases if d in c.devices]
    try:
        from tqdm import tqdm
        bar = tqdm(jobs, desc="bench", unit="case", file=sys.stderr)
    except ImportError:  # pragma: no cover
        bar = jobs
    bw = {d: copy_bandwidth(d) for d in devices}
    for device, c in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{device} {c.loss} {c.label}")
        g = _g(device)
        args, kwargs, diff = c.make(device, c.dtype, g)
        ours, ref = c.ours_fn or getattr(LF, c.loss), c.torch_fn or getattr(F, c.loss)
        if c.ours_kwargs:
            ours = functools.partial(ours, **c.ours_kwargs)
        err_ours = _parity(ours, args, kwargs, diff, ref)
        err_torch = _parity(ref, args, kwargs, diff, ref)
        t = {}
        t["ours_f"] = _time(_fwd(ours, args, kwargs), device, budget)
        t["eager_f"] = _time(_fwd(ref, args, kwargs), device, budget)
        t["ours_fb"] = _time(_fwd_bwd(ours, args, kwargs, diff), device, budget)
        t["eager_fb"] = _time(_fwd_bwd(ref, args, kwargs, diff), device, budget)
        if use_compile:
            torch._dynamo.reset()
            comp = torch.compile(ref, dynamic=False)
            t["comp_f"] = _time(_fwd(comp, args, kwargs), device, budget)
            t["comp_fb"] = _time(_fwd_bwd(comp, args, kwargs, diff), device, budget)
        nbytes = _min_bytes(args, kwargs, diff)
        rate = nbytes / t["ours_fb"]
        rows.append(dict(device=device, loss=c.loss, case=c.label, dtype=str(c.dtype).replace("torch.", ""),
                         err=err_ours, err_torch=err_torch, gbps=rate / 1e9,
                         pct_copy=100 * rate / bw[device], **t))
        del args, kwargs
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows, bw


COLUMNS = [
    ("device", "device", lambda r: r["device"]),
    ("loss", "loss", lambda r: r["loss"]),
    ("case", "case", lambda r: r["case"]),
    ("dtype", "dtype", lambda r: r["dtype"]),
    ("err", "err lossext", lambda r: f"{r['err']:.1e}"),
    ("err_torch", "err torch", lambda r: f"{r['err_torch']:.1e}"),
    ("ours_f", "fwd lossext", lambda r: _fmt_t(r["ours_f"])),
    ("eager_f", "fwd eager", lambda r: _fmt_t(r["eager_f"])),
    ("comp_f", "fwd compile", lambda r: _fmt_t(r.get("comp_f"))),
    ("ours_fb", "f+b lossext", lambda r: _fmt_t(r["ours_fb"])),
    ("eager_fb", "f+b eager", lambda r: _fmt_t(r["eager_fb"])),
    ("comp_fb", "f+b compile", lambda r: _fmt_t(r.get("comp_fb"))),
    ("x_eager", "vs eager", lambda r: _fmt_x(r["ours_fb"], r["eager_fb"])),
    ("x_comp", "vs compile", lambda r: _fmt_x(r["ours_fb"], r.get("comp_fb"))),
    ("gbps", "GB/s", lambda r: f"{r['gbps']:.1f}"),
    ("pct_copy", "% copy", lambda r: f"{r['pct_copy']:.0f}%"),
]


def table(rows, markdown=False):
    head = [h for _, h, _ in COLUMNS]
    body = [[f(r) for _, _, f in COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    w = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join("{:<%d}" % n if i < 4 else "{:>%d}" % n for i, n in enumerate(w))
    return "\n".join([fmt.format(*head), fmt.format(*["-" * n for n in w])] + [fmt.format(*b) for b in body])


def header(bw):
    dev = {"cpu": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                  f"lossext CPU loops: {lossext.cpu_isa()}"}
    if torch.cuda.is_available():
        dev["cuda"] = torch.cuda.get_device_name(0)
    lines = [f"lossext {lossext.__version__}, torch {torch.__version__}, {datetime.date.today().isoformat()}"]
    for d, b in bw.items():
        lines.append(f"{d}: {dev.get(d, d)}; measured copy bandwidth {b / 1e9:.1f} GB/s (read + write)")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="all", choices=["all", "cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--large", action="store_true", help="large sizes only")
    ap.add_argument("--only", default="", help="comma-separated loss names")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timing per measurement (after warm-up)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile columns")
    ap.add_argument("--out", default="", help="also write the report as markdown to this file")
    ap.add_argument("--best", action="store_true", help="report the best (minimum) time of the repetitions, "
                    "not the median (a machine shared with other jobs)")
    ap.add_argument("--plot", default="", help="also draw the speedups and bandwidth into this image (matplotlib)")
    a = ap.parse_args(argv)
    global _STAT
    _STAT = min if a.best else statistics.median
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    if not torch.cuda.is_available():
        devices = [d for d in devices if d != "cuda"]
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    rows, bw = run(devices, a.quick, only, a.budget, not a.no_compile, a.out, a.large)
    text = header(bw) + "\n\n" + table(rows)
    print(text)
    worst = max((r["err"] for r in rows), default=0.0)
    print(f"\nparity: worst relative error of lossext against float64 torch: {worst:.1e}")
    if a.out:
        with open(a.out, "w") as f:
            f.write("# lossext benchmark\n\n```\n" + header(bw) + "\n```\n\n" + table(rows, markdown=True) + "\n")
        print(f"written {a.out}")
    if a.plot:
        from ._bench_plot import plot
        plot(rows, a.plot, header(bw).splitlines()[0])
        print(f"written {a.plot}")


if __name__ == "__main__":
    main()
