"""robustbench-lip: train, certify and attack Lipschitz-regularised image models.

The public API, imported on first use (so `rlip --version` stays fast):
data (`get_dataset`, `dataset_info`, `list_datasets`), models (`create_model`, `create_model_for`,
`list_models`, `load_model`, `save_model`), training (`train`, `TrainConfig`, `SweepSpec`,
`run_sweep`), Lipschitz (`spectral_norm`, `upper_bound`, `certify`), evaluations (`certify_run`,
`attack_run`, `evaluate_attacks`, `score`),
reports (`build_leaderboard`, `write_reports`), extension points (`register_attack`,
`register_dataset`, `register_model`, `register_rule`: each a robustbench_lip.registry.Registry),
the task vocabulary (`Task`, robustbench_lip.tasks).

Holds the package version and the public shortcuts (registration functions, `Task`). Dependencies
point one way: cli → (sweep, evaluations, report) → (training, lipschitz, attacks, scoring) →
(models, data, modelio, records, config) → (registry, tasks, errors, device, io).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.errors import RlipError

_LAZY: dict[str, tuple[str, str]] = {
    "get_dataset": ("robustbench_lip.data", "get_dataset"),
    "dataset_info": ("robustbench_lip.data", "dataset_info"),
    "list_datasets": ("robustbench_lip.data", "list_datasets"),
    "create_model": ("robustbench_lip.models", "create_model"),
    "create_model_for": ("robustbench_lip.models", "create_model_for"),
    "list_models": ("robustbench_lip.models", "list_models"),
    "load_model": ("robustbench_lip.modelio", "load_model"),
    "save_model": ("robustbench_lip.modelio", "save_model"),
    "train": ("robustbench_lip.training", "train"),
    "TrainConfig": ("robustbench_lip.config.train", "TrainConfig"),
    "SweepSpec": ("robustbench_lip.config.sweep", "SweepSpec"),
    "run_sweep": ("robustbench_lip.sweep", "run_sweep"),
    "spectral_norm": ("robustbench_lip.lipschitz.spectral", "spectral_norm"),
    "upper_bound": ("robustbench_lip.lipschitz.bounds", "upper_bound"),
    "certify": ("robustbench_lip.evaluations.lipschitz.certificate", "certify"),
    "certify_run": ("robustbench_lip.evaluations.lipschitz.run", "certify_run"),
    "evaluate_attacks": ("robustbench_lip.evaluations.attacks.metrics", "evaluate_attacks"),
    "attack_run": ("robustbench_lip.evaluations.attacks.run", "attack_run"),
    "score": ("robustbench_lip.scoring", "score"),
    "build_leaderboard": ("robustbench_lip.report", "build_leaderboard"),
    "write_reports": ("robustbench_lip.report", "write_reports"),
    "register_attack": ("robustbench_lip.attacks.registry", "register_attack"),
    "register_dataset": ("robustbench_lip.data.registry", "register_dataset"),
    "register_model": ("robustbench_lip.models.registry", "register_model"),
    "register_rule": ("robustbench_lip.lipschitz.bounds.rules.registry", "register_rule"),
    "Task": ("robustbench_lip.tasks", "Task"),
}

__all__ = ["DatasetInfo", "ModelConfig", "RlipError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'robustbench_lip' has no attribute {name!r}")
