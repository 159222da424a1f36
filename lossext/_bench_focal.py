"""Bench cases of the focal losses (pulled into lossext/bench.py): torch's side is the composite a
user writes (torchvision's formula; the softmax focal loss over log_softmax), eager and compiled."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def tv_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, verbatim (torchvision is not a dependency; tests use it too)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def composite_focal_loss(input, target, alpha=None, gamma=2.0, weight=None, ignore_index=-100, reduction="mean"):
    """The softmax focal loss as a composite (unweighted, alpha None; cross_entropy's mean)."""
    lp = torch.log_softmax(input, 1)
    valid = target != ignore_index
    lpt = lp.gather(1, torch.where(valid, target, 0).unsqueeze(1)).squeeze(1)
    loss = -((1 - lpt.exp()) ** gamma) * lpt * valid
    if reduction == "mean":
        return loss.sum() / valid.sum()
    return loss.sum() if reduction == "sum" else loss


def focal_cases(Case, _randn, _g):
    cs = []

    def sig(shape, onehot):
        def make(device, dtype, g):
            x = _randn(shape, device, dtype, g, 2.0)
            if onehot:  # RetinaNet: ~1% positives, built outside the timing (the user's one-hot)
                n, c = shape
                cls = torch.randint(0, c + 1, (n,), device=device, generator=g)
                cls[torch.rand(n, device=device, generator=g) > 0.01] = c
                t = F.one_hot(cls, c + 1)[:, :c].to(dtype)
            else:
                t = (torch.rand(shape, device=device, generator=g) < 0.1).to(dtype)
            return [x, t], {"reduction": "sum"}, (0,)
        return make

    def sig_index(shape):
        # RetinaNet's head: ~1% of the anchors positive, the rest background (index C). lossext gets
        # the indices; torchvision's formula the float one-hot a user builds from them (outside the
        # timing). Args: x, indices, one-hot; each side reads only its own target.
        def make(device, dtype, g):
            n, c = shape
            x = _randn(shape, device, dtype, g, 2.0)
            cls = torch.randint(0, c, (n,), device=device, generator=g)
            cls[torch.rand(n, device=device, generator=g) > 0.01] = c
            t = F.one_hot(cls, c + 1)[:, :c].to(dtype)
            return [x, cls, t], {"reduction": "sum"}, (0,)
        return make

    def ours_index(x, cls, onehot, **kw):
        from . import functional as LF
        return LF.sigmoid_focal_loss(x, cls, **kw)

    def tv_onehot(x, cls, onehot, **kw):
        return tv_sigmoid_focal_loss(x, onehot, **kw)

    def soft(shape):
        def make(device, dtype, g):
            x = _randn(shape, device, dtype, g, 2.0)
            t = torch.randint(0, shape[1], (shape[0], *shape[2:]), device=device, generator=g)
            return [x, t], {}, (0,)
        return make

    tv = tv_sigmoid_focal_loss
    cs.append(Case("sigmoid_focal_loss", "4096x80", sig((4096, 80), False), torch_fn=tv))
    cs.append(Case("sigmoid_focal_loss", "16M", sig((1 << 18, 64), False), large=True, torch_fn=tv))
    cs.append(Case("sigmoid_focal_loss", "RetinaNet 100000x80 one-hot", sig((100000, 80), True), large=True,
                   torch_fn=tv))
    cs.append(Case("sigmoid_focal_loss", "RetinaNet 100000x80 class-index", sig_index((100000, 80)), large=True,
                   torch_fn=tv_onehot, ours_fn=ours_index))
    cs.append(Case("focal_loss", "8x19x64x64", soft((8, 19, 64, 64)), torch_fn=composite_focal_loss))
    cs.append(Case("focal_loss", "8x19x512x512", soft((8, 19, 512, 512)), large=True, torch_fn=composite_focal_loss))
    return cs
