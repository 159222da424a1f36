"""torch.func transforms through lossext's functionals: grad, jacrev, vmap of grad, against torch."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import lossext.functional as LF
from harness import assert_close

CASES = {
    "mse_loss": lambda g: torch.randn(5, 3, generator=g),
    "l1_loss": lambda g: torch.randn(5, 3, generator=g),
    "binary_cross_entropy_with_logits": lambda g: torch.rand(5, 3, generator=g),
    "kl_div": lambda g: torch.rand(5, 3, generator=g),
    "cross_entropy": lambda g: torch.randint(0, 3, (5,), generator=g),
    "nll_loss": lambda g: torch.randint(0, 3, (5,), generator=g),
}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vmap's "no batching rule" performance warning
        yield


@pytest.mark.parametrize("name", list(CASES))
def test_transforms_match_torch(name):
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(5, 3, generator=g, dtype=torch.float64), CASES[name](g)
    if t.is_floating_point():
        t = t.double()
    ours, ref = getattr(LF, name), getattr(F, name)
    assert_close(torch.func.grad(lambda a: ours(a, t))(x), torch.func.grad(lambda a: ref(a, t))(x),
                 torch.float64, "grad")
    assert_close(torch.func.jacrev(lambda a: ours(a, t, reduction="none"))(x),
                 torch.func.jacrev(lambda a: ref(a, t, reduction="none"))(x), torch.float64, "jacrev")
    xb = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    tb = torch.stack([t] * 4)
    assert_close(torch.vmap(torch.func.grad(lambda a, b: ours(a, b)))(xb, tb),
                 torch.vmap(torch.func.grad(lambda a, b: ref(a, b)))(xb, tb), torch.float64, "vmap(grad)")
