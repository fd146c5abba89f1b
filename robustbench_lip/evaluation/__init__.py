"""Evaluations of a saved model, each returning a typed record (robustbench_lip.records).

- `certify.certify_run(model_path, ...) -> CertifyRecord`: certified / witnessed Lipschitz bounds,
  FNE test, certified robustness (`certificates.certify` on tensors, `certified` for the radii).
- `attack.attack_run(model_path, eps, attacks, ...) -> AttackRecord`: clean vs attacked metrics
  (`robustness.evaluate_attacks` on a model and a dataset).
- scoring lives in `robustbench_lip.scoring` (shared with training): `score`, `Scores`, `batches`.
- `inputs`: the model's saved metadata and the one dataset lookup of both commands.

Names are imported on first use (torchattacks and the bounder are heavy).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "certify_run": "robustbench_lip.evaluation.certify",
    "attack_run": "robustbench_lip.evaluation.attack",
    "certify": "robustbench_lip.evaluation.certificates",
    "Certificate": "robustbench_lip.evaluation.certificates",
    "evaluate_attacks": "robustbench_lip.evaluation.robustness",
    "score": "robustbench_lip.scoring",
    "Scores": "robustbench_lip.scoring",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
