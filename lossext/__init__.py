"""lossext: torch.nn's losses as hand-written native CPU and CUDA kernels (torch.ops.lossext.*)."""
from ._C_loader import _C  # noqa: F401  (must come first: loads and registers the ops)
from . import distributed, functional, nn  # noqa: E402
from ._registry import SPECS  # noqa: E402
from ._patch import is_patched, patch, patched, unpatch  # noqa: E402,F401

__version__ = "0.1.0"


def cpu_isa() -> str:
    """The instruction set whose CPU loops this process runs: DEFAULT, AVX2 or AVX512."""
    import torch

    return torch.ops.lossext.cpu_isa()


def built_isas() -> list:
    """The CPU instruction sets this build holds loops for (see setup.py)."""
    import torch

    return torch.ops.lossext.built_isas().split(",")


__all__ = ["distributed", "functional", "nn", "cpu_isa", "built_isas", "SPECS", "__version__"]
