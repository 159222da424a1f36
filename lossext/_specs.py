"""The table of lossext ops: one row per loss (see _registry.py for what a row derives)."""
from ._registry import LossSpec, _promoted, register_all

SPECS = [
    LossSpec("binary_cross_entropy_with_logits", diff=("input", "target"),
             operands=("input", "target", "weight", "pos_weight")),
    LossSpec("binary_cross_entropy", diff=("input", "target"), operands=("input",)),
    LossSpec("multilabel_soft_margin_loss", diff=("input", "target"), operands=("input", "target", "weight"),
             none_loss=lambda a: a["input"].new_empty(
                 a["input"].shape[:-1], dtype=_promoted([a["input"], a["target"], a["weight"]]))),
]

register_all(SPECS)
