"""lossext.patch(): torch.nn.functional's and torch.nn's losses swapped for lossext's in running code.

Third-party training loops call torch's names (`F.cross_entropy`, `nn.CrossEntropyLoss(...)`);
patch() puts lossext's at those names, for the losses lossext implements (the names that
lossext.functional / lossext.nn export and torch also has: no second list to maintain).

What is swapped, and why only there:
- `torch.nn.functional.<loss>` -> `lossext.functional.<loss>`. torch's own loss modules look F.<loss>
  up at call time, so modules made before patch() (or reached as torch.nn.modules.loss.<Loss>) run
  lossext's kernels too while patched.
- `torch.nn.<Loss>` -> a stand-in class: calling it makes a `lossext.nn.<Loss>` (a subclass of torch's
  class: same constructor, attributes, state_dict), and `isinstance(m, torch.nn.<Loss>)` /
  `issubclass` answer as for torch's class, so modules made before and while patched both pass.
  A class that subclasses the stand-in while patched is a lossext-backed subclass of torch's class.
- Not `torch.nn.modules.loss.<Loss>`: that is the classes' home (`__module__`), where pickle finds a
  class by name and checks identity; replacing it would make torch.save of a model holding a torch
  loss module fail while patched.
Names bound before patch() (`from torch.nn.functional import cross_entropy`) keep torch's function.

patch() calls nest: each patch() needs one unpatch(); the last one restores exactly the objects that
were there (identity), unpatch() without patch() is a no-op, and `with patched():` restores on
exceptions. patch/unpatch are serialized by a lock, but the swap is process-wide, not per thread:
other threads running torch code see it at whatever point they are (patch before starting them).

lossext itself never calls the patched torch names (its math is its own kernels; its modules'
torch base classes were bound at import), so a patched call cannot recurse into itself.
"""
from __future__ import annotations

import contextlib
import threading
import warnings

import torch
import torch.nn.functional as _F

from . import functional as _LF
from . import nn as _LN

# The torch objects lossext stands in for, taken at import.
_TORCH_FUNCTIONAL = {n: getattr(_F, n) for n in _LF.__all__ if callable(getattr(_F, n, None))}
_TORCH_MODULES = {n: getattr(torch.nn, n) for n in _LN.__all__
                  if isinstance(getattr(torch.nn, n, None), type) and issubclass(getattr(_LN, n), getattr(torch.nn, n))}


class _StandIn(type):
    """Metaclass of the classes patch() puts at torch.nn.<Loss>. On the stand-in itself: calling it
    builds lossext's module, isinstance/issubclass test against torch's class. On a class derived
    from a stand-in: plain class behaviour."""

    def __call__(cls, *args, **kwargs):
        if "_lossext_cls" in cls.__dict__:
            return cls._lossext_cls(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def __instancecheck__(cls, obj) -> bool:
        if "_torch_cls" in cls.__dict__:
            return isinstance(obj, cls._torch_cls)
        return super().__instancecheck__(obj)

    def __subclasscheck__(cls, sub) -> bool:
        if "_torch_cls" in cls.__dict__:
            return issubclass(sub, cls._torch_cls)
        return super().__subclasscheck__(sub)


def _stand_in(name: str) -> type:
    lx, th = getattr(_LN, name), _TORCH_MODULES[name]
    body = {"__doc__": th.__doc__, "__module__": __name__, "__qualname__": name,
            "_lossext_cls": lx, "_torch_cls": th}
    return _StandIn(name, (lx,), body)


_STAND_INS = {n: _stand_in(n) for n in _TORCH_MODULES}
_TARGETS = ([(_F, n, getattr(_LF, n)) for n in _TORCH_FUNCTIONAL]
            + [(torch.nn, n, c) for n, c in _STAND_INS.items()])

_lock = threading.RLock()
_depth = 0
_saved: list = []  # (module, name, what was there, what patch() put there)


def patch() -> None:
    """Swap torch.nn.functional's and torch.nn's losses for lossext's (see the module docstring).
    Nested calls count: the matching last unpatch() restores."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            for mod, name, ours in _TARGETS:
                _saved.append((mod, name, getattr(mod, name), ours))
                setattr(mod, name, ours)


def unpatch(*, force: bool = False) -> None:
    """Undo one patch() (all of them with force=True); the last restores exactly what was there.
    A name that someone else re-bound after patch() is left as they set it (with a warning)."""
    global _depth
    with _lock:
        if _depth == 0:
            return
        _depth = 0 if force else _depth - 1
        if _depth:
            return
        while _saved:
            mod, name, theirs, ours = _saved.pop()
            if getattr(mod, name, None) is ours:
                setattr(mod, name, theirs)
            else:
                warnings.warn(f"lossext.unpatch(): {mod.__name__}.{name} was re-bound after lossext.patch(); "
                              "left as it is", RuntimeWarning, stacklevel=2)


def is_patched() -> bool:
    """Whether lossext.patch() is in effect."""
    return _depth > 0


@contextlib.contextmanager
def patched():
    """`with lossext.patched(): ...` (or as a decorator): patch() on entry, unpatch() on exit, also
    when the body raises."""
    patch()
    try:
        yield
    finally:
        unpatch()


def patched_names() -> dict:
    """{'torch.nn.functional': [...], 'torch.nn': [...]}: what patch() swaps."""
    return {"torch.nn.functional": sorted(_TORCH_FUNCTIONAL), "torch.nn": sorted(_TORCH_MODULES)}
