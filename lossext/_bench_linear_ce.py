"""linear_cross_entropy's cases for lossext.bench (pulled in by _cases()): a small CPU case and the
H200 one (bf16, N=8192, H=4096, V=128256). The large CPU shapes, with peak memory, are in
benchmarks/linear_cross_entropy_bench.py (a fresh subprocess per case)."""
import torch


def cases(Case, _randn, _cls):
    def make(n, h, v, bias=False):
        def mk(device, dtype, g):
            x = _randn((n, h), device, dtype, g)
            w = _randn((v, h), device, dtype, g, h ** -0.5)
            kw = {"linear_bias": _randn((v,), device, dtype, g)} if bias else {}
            return [x, w, _cls(n, v, device, g)], kw, (0, 1)
        return mk

    return [
        Case("linear_cross_entropy", "256x128->4000", make(256, 128, 4000)),
        Case("linear_cross_entropy", "256x128->4000 bias", make(256, 128, 4000, bias=True)),
        Case("linear_cross_entropy", "8192x4096->128256", make(8192, 4096, 128256), torch.bfloat16, large=True,
             devices=("cuda",)),
    ]
