"""Configuration dataclasses, frozen and JSON round-trippable; one definition of every setting.

model.py: `ModelConfig` (attached to every model), `DatasetInfo`; penalty.py: `PenaltyConfig`;
optim.py: `OptimConfig`; train.py: `TrainConfig` (holds a PenaltyConfig and an OptimConfig);
sweep.py: `SweepSpec` (zoo/*.toml), `SlurmOptions`; fields.py: `described` (a field with its
CLI help: the CLI options are made from the fields). Allowed values of choice settings are in
robustbench_lip.choices; the task vocabulary (`Task`, `TASKS`) is robustbench_lip.tasks'.

May import: errors, choices, tasks and the standard library — no torch, nothing else of the package.
"""

from __future__ import annotations

from robustbench_lip.config.model import TASKS, DatasetInfo, ModelConfig, Task
from robustbench_lip.config.optim import OptimConfig
from robustbench_lip.config.penalty import PenaltyConfig
from robustbench_lip.config.sweep import SlurmOptions, SweepSpec, format_lam
from robustbench_lip.config.train import TrainConfig

__all__ = [
    "TASKS",
    "DatasetInfo",
    "ModelConfig",
    "OptimConfig",
    "PenaltyConfig",
    "SlurmOptions",
    "SweepSpec",
    "Task",
    "TrainConfig",
    "format_lam",
]
