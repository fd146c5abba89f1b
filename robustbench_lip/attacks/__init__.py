"""Adversarial attacks for classifiers and segmenters, and the attack registry.

- `registry`: `AttackSpec` / `register_attack` / `ATTACKS` — one registered spec per attack (what
  it attacks, norms, recorded steps/alpha/restarts, protocols, a build function returning
  `runner(x, y, m) -> adversarial x`); `builtin` registers fgsm, pgd, segpgd, cospgd, apgd,
  autoattack and sea. Everything that lists attacks reads `ATTACKS`.
- `eps`: `parse_eps_token`, `parse_eps_list`, `format_eps` (shared by every command).
- `classification.ClassificationAttack`: FGSM / PGD / APGD / AutoAttack through torchattacks,
  ℓ∞ and ℓ2, with the caller's model modes and global RNG restored (also on error).
- `segmentation.SegmentationAttack`: FGSM / PGD (pixel CE), SegPGD, CosPGD on `mask_logits`.
- `apgd_seg.APGDSegmentation`, `sea.SEA`, `sea_runner.SEARunner`: APGD for segmentation, the SEA
  ensemble, and SEA as one cell of an evaluation.
Evaluating a model under attack (clean vs attacked metrics, the attack record) is
`robustbench_lip.evaluations.attacks` (metrics.evaluate_attacks, run.attack_run).

May import: errors, choices, registry, tasks, device, lipschitz.jvp (ε-ball helpers), torch and
torchattacks — never evaluations, records or report. `registry`, `builtin` and `eps` import no torch
(the CLI help and the report read them); heavy submodules are imported on first use of their names.
"""

from __future__ import annotations

import importlib
from typing import Any

from robustbench_lip.attacks.eps import format_eps, parse_eps_list, parse_eps_token
from robustbench_lip.attacks.registry import ATTACKS, AttackCall, AttackSpec, register_attack

_LAZY = {
    "ClassificationAttack": "robustbench_lip.attacks.classification",
    "SegmentationAttack": "robustbench_lip.attacks.segmentation",
}

__all__ = [
    "ATTACKS",
    "AttackCall",
    "AttackSpec",
    "ClassificationAttack",
    "SegmentationAttack",
    "format_eps",
    "parse_eps_list",
    "parse_eps_token",
    "register_attack",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
