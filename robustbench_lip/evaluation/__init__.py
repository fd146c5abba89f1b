"""Attack evaluations of a saved model (`attack.attack_run`, `robustness.evaluate_attacks`), and a
re-export shim for what moved to `robustbench_lip.evaluations` (`certify_run`, `certify`,
`Certificate`; the `inputs` and `data_check` modules are thin re-exports too).

Names are imported on first use (torchattacks and the bounder are heavy).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "certify_run": "robustbench_lip.evaluations.lipschitz.run",
    "attack_run": "robustbench_lip.evaluation.attack",
    "certify": "robustbench_lip.evaluations.lipschitz.certificate",
    "Certificate": "robustbench_lip.evaluations.lipschitz.certificate",
    "evaluate_attacks": "robustbench_lip.evaluation.robustness",
    "score": "robustbench_lip.scoring",
    "Scores": "robustbench_lip.scoring",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
