"""Bench cases of ctc_loss (pulled into lossext.bench's table): torch's side is F.ctc_loss, eager
and compiled. Forward+backward of the mean loss, float32."""
from __future__ import annotations

from typing import List

import torch


def _ctc(T, N, C, S, cudnn_layout=False):
    """Random (T, N, C) log-probabilities, targets of S // 2 .. S labels (never the blank 0), input
    lengths of 0.8 T .. T. cudnn_layout: the inputs torch's cuDNN path takes (int32 concatenated
    targets and int32 lengths on the CPU, every input length T)."""
    def make(device, dtype, g):
        lp = torch.randn((T, N, C), device=device, generator=g).log_softmax(2).to(dtype)
        tl = torch.randint(S // 2, S + 1, (N,), device=device, generator=g)
        il = torch.randint(int(0.8 * T), T + 1, (N,), device=device, generator=g)
        tg = torch.randint(1, C, (N, S), device=device, generator=g)
        if cudnn_layout:
            tl = tl.cpu().int()
            il = torch.full((N,), T, dtype=torch.int32)
            tg = torch.cat([tg[n, :int(tl[n])] for n in range(N)]).cpu().int()
        return [lp, tg, il, tl], {}, (0,)
    return make


def cases(Case) -> List:
    shapes = [((200, 32, 40, 50), False), ((1000, 16, 100, 200), True), ((200, 16, 5000, 50), True)]
    out = []
    for (T, N, C, S), large in shapes:
        out.append(Case("ctc_loss", f"T={T} N={N} C={C} S={S}", _ctc(T, N, C, S), large=large))
    # torch's cuDNN path (blank 0, int32 CPU targets, every input length T, S < 256) on CUDA
    for T, N, C, S in [(200, 32, 40, 50), (1000, 16, 100, 200)]:
        out.append(Case("ctc_loss", f"T={T} N={N} C={C} S={S} cudnn layout", _ctc(T, N, C, S, True),
                        devices=("cuda",)))
    return out
