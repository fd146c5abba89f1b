"""Task losses and the augmentation of the training loop (flip/crop, Gaussian noise).

Classification → cross-entropy on the logits; segmentation and image-to-image models → pixel
cross-entropy on `mask_logits` (for the binary one-channel image-to-image U-Net that is exactly
BCE-with-logits on the mask, since its mask logits are [0, z]), plus soft Dice if asked. A config
with another `loss` (margin cross-entropy, hinge, HKR: robustbench_lip.losses_lip) uses it in place
of the cross-entropy, on the logits or on the (scaled) mask logits alike (`config_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.config import TrainConfig
from robustbench_lip.data.registry import is_natural
from robustbench_lip.errors import RlipError
from robustbench_lip.losses_lip import LossFn, get_loss


def use_augment(cfg: TrainConfig) -> bool:
    """Whether the run augments: cfg.augment, or (None) natural images only (the dataset's spec says,
    data.registry.is_natural)."""
    return cfg.augment if cfg.augment is not None else is_natural(cfg.data)


def augmentation(cfg: TrainConfig) -> list[str]:
    """What the training loop really applies to the training inputs, in order (recorded with the run)."""
    out = ["random horizontal flip (p = 0.5)", "random crop, 4 px zero padding"] if use_augment(cfg) else []
    if cfg.noise_sigma > 0:
        out.append(f"gaussian noise N(0, {cfg.noise_sigma:g}²), not clamped (task loss only)")
    return out


def add_noise(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """x + σ·ε, ε ~ N(0, I) drawn from `gen` (CPU) — not clamped to [0, 1]."""
    return x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)


def config_loss(cfg: TrainConfig) -> LossFn | None:
    """The loss function of cfg.loss with its options; None for "ce" (the cross-entropy path)."""
    return None if cfg.loss == "ce" else get_loss(cfg.loss, **cfg.loss_options())


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean over classes of the soft Dice of softmax(logits) (N, M, H, W) against target (N, H, W)."""
    p = logits.float().softmax(1)
    g = F.one_hot(target.long(), p.shape[1]).permute(0, 3, 1, 2).to(p)
    inter = (p * g).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + g.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


def task_loss(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    dice: bool,
    logit_scale: float = 1.0,
    loss_fn: LossFn | None = None,
) -> torch.Tensor:
    """The supervised loss of one batch for the model's task (see the module docstring); segmenters'
    mask logits are multiplied by `logit_scale` first. loss_fn (logits, labels) → scalar replaces
    the cross-entropy (None: cross-entropy)."""
    if model.config.task == "classification":
        return F.cross_entropy(model(x), labels) if loss_fn is None else loss_fn(model(x), labels)
    from robustbench_lip.models import mask_logits

    if masks is None:
        raise RlipError(f"{model.config.arch} needs masks to train")
    z = mask_logits(model, x) * logit_scale
    loss = F.cross_entropy(z.float(), masks) if loss_fn is None else loss_fn(z, masks)
    return loss + soft_dice_loss(z, masks) if dice else loss


def augment(
    x: torch.Tensor, masks: torch.Tensor | None, gen: torch.Generator, pad: int = 4
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random horizontal flip and random crop with `pad` zero padding, applied alike to the masks
    (padding there is background 0). Randomness from `gen` (CPU)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    fl = flip.to(x.device).view(-1, 1, 1, 1)
    x = torch.where(fl, x.flip(3), x)
    xp = F.pad(x, (pad, pad, pad, pad))
    x = torch.stack([xp[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if masks is not None:
        masks = torch.where(fl.view(-1, 1, 1), masks.flip(2), masks)
        mp = F.pad(masks, (pad, pad, pad, pad))
        masks = torch.stack([mp[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return x, masks
