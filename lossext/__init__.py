"""lossext: torch.nn's losses as hand-written native CPU and CUDA kernels (torch.ops.lossext.*)."""
import os as _os

from ._C_loader import _C  # noqa: F401  (must come first: loads and registers the ops)
from . import distributed, functional, nn  # noqa: E402
from ._registry import SPECS  # noqa: E402
from ._patch import is_patched, patch, patched, unpatch  # noqa: E402,F401

__version__ = "0.1.0"

# The CMake package of the C++ API (lossext/lossext.h, liblossext.so): find_package(lossext) with
# this folder in CMAKE_PREFIX_PATH, beside torch.utils.cmake_prefix_path (README: C++ API).
cmake_prefix_path = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "share", "cmake")


def cpu_isa() -> str:
    """The instruction set whose CPU loops this process runs: DEFAULT, AVX2 or AVX512."""
    import torch

    return torch.ops.lossext.cpu_isa()


def built_isas() -> list:
    """The CPU instruction sets this build holds loops for (see setup.py)."""
    import torch

    return torch.ops.lossext.built_isas().split(",")


__all__ = ["distributed", "functional", "nn", "cpu_isa", "built_isas", "SPECS", "__version__", "cmake_prefix_path"]
