"""Adversarial attacks for classifiers and segmenters, and their evaluation.

- `eps`: `parse_eps_token`, `parse_eps_list`, `format_eps` (shared by every command).
- `classification.ClassificationAttack`: FGSM / PGD / APGD / AutoAttack through torchattacks,
  ℓ∞ and ℓ2, with the caller's model modes and global RNG restored (also on error).
- `segmentation.SegmentationAttack`: FGSM / PGD (pixel CE), SegPGD, CosPGD on `mask_logits`.
- `evaluate.evaluate` (import it from the submodule, whose name it shares): clean and attacked
  accuracy / precision / mIoU per ε — the payload of an attack record.

Heavy submodules (torchattacks) are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

from robustbench_lip.attacks.eps import format_eps, parse_eps_list, parse_eps_token

_LAZY = {
    "ClassificationAttack": "robustbench_lip.attacks.classification",
    "SegmentationAttack": "robustbench_lip.attacks.segmentation",
    "ATTACK_NAMES": "robustbench_lip.attacks.evaluate",
}

__all__ = [
    "ATTACK_NAMES",
    "ClassificationAttack",
    "SegmentationAttack",
    "format_eps",
    "parse_eps_list",
    "parse_eps_token",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
