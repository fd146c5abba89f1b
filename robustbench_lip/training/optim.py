"""The optimiser and its learning-rate schedule, from an OptimConfig."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from robustbench_lip.choices import Optimizer, Schedule
from robustbench_lip.config import OptimConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], optim: OptimConfig) -> torch.optim.Optimizer:
    """SGD (with momentum) or AdamW over `params`, with the config's lr and weight decay."""
    if optim.name == Optimizer.sgd:
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)


def lr_factor(optim: OptimConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier per step: linear warm-up then cosine towards 0, or constant.

    Positive at every step < total_steps (the first step included, also for a 1-step run); the
    cosine reaches 0 only at step total_steps, after the last update."""
    warm = int(optim.warmup * total_steps)
    cosine = optim.schedule == Schedule.cosine

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not cosine:
            return 1.0
        t = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return factor


def make_scheduler(
    opt: torch.optim.Optimizer, optim: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step scheduler of `lr_factor` (call `.step()` after every optimiser step)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(optim, total_steps))
