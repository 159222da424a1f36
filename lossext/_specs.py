"""The table of lossext ops: one row per loss (see _registry.py for what a row derives)."""
from ._registry import LossSpec, register_all

SPECS = [
    LossSpec("binary_cross_entropy_with_logits", diff=("input", "target"),
             operands=("input", "target", "weight", "pos_weight")),
]

register_all(SPECS)
