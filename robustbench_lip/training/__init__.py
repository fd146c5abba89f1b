"""Training with the Lipschitz penalty: `train(cfg, run_dir) -> TrainResult` (training/train.py).

epoch.py: one epoch of optimiser steps; evaluate.py: the held-out evaluation after each epoch;
state.py: run folders, checkpoints, resume; optim.py: optimiser and lr schedule; losses.py: task
losses and augmentation.

May import: config, data, models, modelio, records, lipschitz (penalty, spectral), losses_lip,
scoring, runs, choices, device, io, errors; never evaluations, report or cli.
"""

from __future__ import annotations

from robustbench_lip.training.evaluate import FINAL_KEYS, evaluate, measure_sigma
from robustbench_lip.training.losses import augment, task_loss
from robustbench_lip.training.optim import lr_factor
from robustbench_lip.training.state import is_rlip_run, prepare_run_dir
from robustbench_lip.training.train import ProgressFn, Setup, TrainResult, build, train

__all__ = [
    "FINAL_KEYS",
    "ProgressFn",
    "Setup",
    "TrainResult",
    "augment",
    "build",
    "evaluate",
    "is_rlip_run",
    "lr_factor",
    "measure_sigma",
    "prepare_run_dir",
    "task_loss",
    "train",
]
