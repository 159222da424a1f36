"""Loads the compiled library once, with one clear message when it is missing."""
import importlib

import torch  # noqa: F401  (loads libtorch, which _C links against)

try:
    _C = importlib.import_module("lossext._C")
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "lossext: the native extension lossext._C is not built or does not load "
        f"({e}). Build it with `pip install --no-build-isolation -e .` (see README.md)."
    ) from e
