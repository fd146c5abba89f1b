"""One training epoch: batches in a (seed, epoch)-seeded order, task loss + penalty, optimiser steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from robustbench_lip.config import TrainConfig
from robustbench_lip.training.losses import add_noise, augment, config_loss, task_loss, use_augment
from robustbench_lip.training.state import Trainables

Emit = Callable[[dict[str, Any]], None]


class NonFiniteLoss(Exception):
    """The loss or the penalty of a step was not finite (epoch and step 1-based)."""

    def __init__(self, epoch: int, step: int, loss: float, penalty: float) -> None:
        super().__init__(f"non-finite loss at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss, self.penalty = epoch, step, loss, penalty


@dataclass
class EpochStats:
    """Sums over an epoch's steps; `metrics()` gives the per-epoch training entries of the history."""

    loss: float = 0.0
    penalty: float = 0.0
    sigma_sum: float = 0.0
    sigma_n: int = 0
    sigma_max: float = 0.0
    images: int = 0
    steps: int = 0
    lr: float | None = None  # the lr the epoch's last step used
    time_s: float = 0.0

    def metrics(self) -> dict[str, Any]:
        n = max(self.steps, 1)
        return {
            "train_loss": self.loss / n,
            "train_penalty": self.penalty / n,
            "train_sigma_mean": self.sigma_sum / self.sigma_n if self.sigma_n else None,
            "train_sigma_max": self.sigma_max if self.sigma_n else None,
            "train_time_s": self.time_s,
            "images_per_s": self.images / max(self.time_s, 1e-9),
        }


@dataclass
class Loop:
    """What every epoch of a run shares."""

    cfg: TrainConfig
    parts: Trainables
    train_set: Any
    device: torch.device
    amp: bool
    drop_last: bool
    steps: int  # per epoch


def epoch_seed(cfg: TrainConfig, epoch: int) -> int:
    """The seed of an epoch's data order and augmentation (epoch 0-based)."""
    return cfg.seed * 100_003 + epoch


#: added to an epoch's seed for its Gaussian-noise generator (a stream apart from flip/crop's)
NOISE_STREAM = 0x6E6F697365


def run_epoch(loop: Loop, epoch: int, emit: Emit) -> EpochStats:
    """Train one epoch (0-based) in train mode; raises NonFiniteLoss before a non-finite step."""
    from robustbench_lip.data import make_loader

    cfg = loop.cfg
    loop.parts.model.train()
    seed = epoch_seed(cfg, epoch)
    aug_gen = torch.Generator().manual_seed(seed)
    loader = make_loader(loop.train_set, cfg.batch_size, shuffle=True, seed=seed, drop_last=loop.drop_last)
    do_augment = use_augment(cfg)
    noise_gen = torch.Generator().manual_seed(seed + NOISE_STREAM) if cfg.noise_sigma > 0 else None
    stats = EpochStats()
    t0 = time.perf_counter()
    for step, (x, y, m) in enumerate(loader):
        x, y = x.to(loop.device, non_blocking=True), y.to(loop.device, non_blocking=True)
        m = m.to(loop.device, non_blocking=True) if m is not None else None
        if do_augment:
            x, m = augment(x, m, aug_gen)
        x_task = add_noise(x, cfg.noise_sigma, noise_gen) if noise_gen is not None else x
        loss, penalty, sigma = _step(loop, (x_task, x), y, m, epoch, step, stats)
        emit(
            {
                "event": "step",
                "epoch": epoch + 1,
                "step": step + 1,
                "steps": loop.steps,
                "loss": loss,
                "penalty": penalty,
                "sigma": sigma,
                "images_per_s": stats.images / max(time.perf_counter() - t0, 1e-9),
            }
        )
    stats.time_s = time.perf_counter() - t0
    if stats.lr is None:  # no step
        stats.lr = float(loop.parts.optimizer.param_groups[0]["lr"])
    return stats


def _step(
    loop: Loop,
    xs: tuple[torch.Tensor, torch.Tensor],
    y: torch.Tensor,
    m: torch.Tensor | None,
    epoch: int,
    step: int,
    stats: EpochStats,
) -> tuple[float, float, float | None]:
    """One optimiser step on a batch, added to `stats`; returns (loss, penalty, max σ or None).
    xs: (the task loss's inputs — with noise when asked —, the penalty's inputs)."""
    cfg, parts = loop.cfg, loop.parts
    x_task, x = xs
    with torch.autocast(device_type=loop.device.type, enabled=loop.amp):
        loss = task_loss(parts.model, x_task, y, m, cfg.dice, cfg.logit_scale, config_loss(cfg))
    p = parts.penalty(parts.model, x)
    total = loss.float() + p.value
    if not bool(torch.isfinite(total)):
        raise NonFiniteLoss(epoch + 1, step + 1, float(loss.detach()), float(p.value.detach()))
    opt = parts.optimizer
    opt.zero_grad(set_to_none=True)
    parts.scaler.scale(total).backward()
    parts.scaler.step(opt)
    parts.scaler.update()
    stats.lr = float(opt.param_groups[0]["lr"])  # the lr this step used (> 0 from step 0)
    parts.scheduler.step()
    stats.loss += float(loss.detach())
    stats.penalty += float(p.value.detach())
    stats.images += x.shape[0]
    stats.steps += 1
    has_sigma = p.applied and p.sigma.numel() > 0
    if has_sigma:
        stats.sigma_sum += float(p.sigma.sum())
        stats.sigma_n += p.sigma.numel()
        stats.sigma_max = max(stats.sigma_max, float(p.sigma.max()))
    return float(loss.detach()), float(p.value.detach()), float(p.sigma.max()) if has_sigma else None
