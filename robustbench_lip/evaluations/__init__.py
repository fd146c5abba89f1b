"""Evaluations of a saved model, one protocol for every kind (`base`): typed settings with their
defaults (the CLI options are made from them), one context that loads the model, its config.json
and its data once, one load → compute → record → write path and one "already recorded" rule.

- `lipschitz/`: the Lipschitz certificate (certified upper / witnessed lower bounds, FNE test) and
  its certified radii (margins, linear heads, masks) — `certify_run`, `certify`;
- `smoothing/`: randomized-smoothing certificates (sampling, statistics, classification,
  segmentation) — `certify_smoothed_run`;
- `attacks/`: attack evaluations (settings, request plan, per-cell protocol and SEA, worst case,
  metrics) — `attack_run`, `evaluate_attacks`;
- `inputs`, `data_check`: the one dataset lookup and the "is this the run's own data" rule;
  `steps`: progress callbacks.

May import: lipschitz, attacks, models, modelio, data, records, config, scoring, metrics,
device, errors, choices — never cli, report or sweep. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "certify_run": "robustbench_lip.evaluations.lipschitz.run",
    "certify": "robustbench_lip.evaluations.lipschitz.certificate",
    "Certificate": "robustbench_lip.evaluations.lipschitz.certificate",
    "certify_smoothed_run": "robustbench_lip.evaluations.smoothing.run",
    "attack_run": "robustbench_lip.evaluations.attacks.run",
    "evaluate_attacks": "robustbench_lip.evaluations.attacks.metrics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
