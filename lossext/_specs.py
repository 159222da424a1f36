"""The table of lossext ops: one row per loss (see _registry.py for what a row derives)."""
from ._registry import LossSpec, register_all

SPECS = [
    LossSpec("binary_cross_entropy_with_logits", diff=("input", "target"),
             operands=("input", "target", "weight", "pos_weight")),
]


# --- poisson_nll_loss, gaussian_nll_loss, kl_div ---------------------------------------------
def _gaussian_var_view(a):
    """var lacking input's last dimension is unsqueezed (as the host op does) before broadcasting."""
    import torch

    x, v = a["input"], a["var"]
    if isinstance(v, torch.Tensor) and v.shape != x.shape and x.dim() >= 1 and v.shape == x.shape[:-1]:
        a = dict(a, var=v.unsqueeze(-1))
    return a


SPECS += [
    LossSpec("poisson_nll_loss", diff=("input", "target")),
    LossSpec("gaussian_nll_loss", diff=("input", "target", "var"), operands=("input", "target", "var"),
             views=_gaussian_var_view),
    LossSpec("kl_div", diff=("input", "target")),
]

register_all(SPECS)
