"""Adversarial attacks for classifiers and segmenters.

- `eps`: `parse_eps_token`, `parse_eps_list`, `format_eps` (shared by every command).
- `classification.ClassificationAttack`: FGSM / PGD / APGD / AutoAttack through torchattacks,
  ℓ∞ and ℓ2, with the caller's model modes and global RNG restored (also on error).
- `segmentation.SegmentationAttack`: FGSM / PGD (pixel CE), SegPGD, CosPGD on `mask_logits`.
- `apgd_seg.APGDSegmentation`, `sea.SEA`: APGD for segmentation and the SEA ensemble (`sea`).
Evaluating a model under attack (clean vs attacked metrics, the attack record) is
`robustbench_lip.evaluation` (robustness.evaluate_attacks, attack.attack_run).

Heavy submodules (torchattacks) are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

from robustbench_lip.attacks.eps import format_eps, parse_eps_list, parse_eps_token

#: Every attack name the commands accept ("all" expands to those that fit the model).
ATTACK_NAMES: tuple[str, ...] = ("fgsm", "pgd", "segpgd", "cospgd", "apgd", "autoattack", "sea")
#: Attacks that only work on pixel logits (segmentation).
PIXEL_ONLY: tuple[str, ...] = ("segpgd", "cospgd")

_LAZY = {
    "ClassificationAttack": "robustbench_lip.attacks.classification",
    "SegmentationAttack": "robustbench_lip.attacks.segmentation",
}

__all__ = [
    "ATTACK_NAMES",
    "PIXEL_ONLY",
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
