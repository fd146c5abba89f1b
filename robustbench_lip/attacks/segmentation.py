"""Segmentation attacks on pixel logits: FGSM, PGD (pixel-wise CE), SegPGD and CosPGD; ℓ∞ and ℓ2.

Call style as torchattacks: `atk(images, masks) -> adversarial images`, images (N, C, H, W) in
[0, 1], masks (N, H, W) int64 with `ignore_index` marking pixels that take no part. The pixel
logits are `mask_logits(x)` (N, M, H, W) of the model (for mResNet-18 the upsampled CAM class maps
plus background). The same engine also accepts image-level logits (N, K) with labels (N,), which
is how `SegmentationAttack(..., logits_fn=model)` reproduces torchattacks.PGD bit for bit.

Every step costs one forward and one backward pass; SegPGD and CosPGD only add an argmax or a
softmax over the logits (see benchmarks/bench_attack.py for the measured ratio).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from robustbench_lip.attacks.base import (
    ascent_direction,
    check_attack,
    default_alpha,
    fast_argmax,
    isolated,
    make_generator,
    project,
    random_start,
)
from robustbench_lip.attacks.registry import DEFAULT_STEPS
from robustbench_lip.errors import RlipError

SEGMENTATION_ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "segpgd", "cospgd")
IGNORE_INDEX = 255  # mask value of pixels without a label (the usual convention of VOC/COCO tools)

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def pixel_logits_fn(model: torch.nn.Module) -> LogitsFn:
    """`x -> (N, M, H, W)` pixel logits of a model that segments.

    A model with a `.config` follows `robustbench_lip.models.can_segment` (its `mask_logits` method,
    or the forward of a segmentation model); a bare module needs a `mask_logits` method."""
    cfg = getattr(model, "config", None)
    if cfg is not None:
        from robustbench_lip.models import can_segment

        if not can_segment(model):
            raise RlipError(
                f"model {getattr(cfg, 'arch', type(model).__name__)} does not produce segmentation masks"
            )
        method = getattr(model, "mask_logits", None)
        return method if callable(method) else model
    method = getattr(model, "mask_logits", None)
    if callable(method):
        return method
    raise RlipError(f"model {type(model).__name__} cannot segment: it has no mask_logits")


def _valid(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    return torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index


def ce_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None, step: int, steps: int
) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels (or samples) — torchattacks' loss when nothing is ignored."""
    if ignore_index is None:
        return F.cross_entropy(logits, target)
    if not bool((target != ignore_index).any()):  # nothing labelled: a zero loss, not NaN
        return logits.sum() * 0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


def segpgd_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None, step: int, steps: int
) -> torch.Tensor:
    """SegPGD (Gu et al., ECCV 2022, Eq. 4): (1 − λ_t)·CE over correctly classified pixels plus
    λ_t·CE over wrongly classified ones, λ_t = t / (2T) for step t = 0..T−1, divided by the
    number of labelled pixels."""
    valid = _valid(target, ignore_index)
    tgt = torch.where(valid, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits, tgt, reduction="none")
    lam = step / (2 * steps)
    correct = (fast_argmax(logits.detach(), 1) == tgt) & valid
    wrong = valid & ~correct
    w = correct.to(ce.dtype) * (1 - lam) + wrong.to(ce.dtype) * lam
    return (w * ce).sum() / valid.sum().clamp_min(1)


def cospgd_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None, step: int, steps: int
) -> torch.Tensor:
    """CosPGD (Agnihotri et al., ICML 2024, Alg. 1): per-pixel CE weighted by the (detached) cosine
    similarity of softmax(logits) and the one-hot label, averaged over labelled pixels."""
    valid = _valid(target, ignore_index)
    tgt = torch.where(valid, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits, tgt, reduction="none")
    with torch.no_grad():
        prob = logits.softmax(1)
        # (p·p).sum(1).sqrt(), not prob.norm(dim=1): the latter is ~100× slower on CPU over dim 1
        cos = prob.gather(1, tgt.unsqueeze(1)).squeeze(1) / (prob * prob).sum(1).sqrt().clamp_min(1e-12)
        w = cos * valid.to(cos.dtype)
    return (w * ce).sum() / valid.sum().clamp_min(1)


LOSSES = {"fgsm": ce_loss, "pgd": ce_loss, "segpgd": segpgd_loss, "cospgd": cospgd_loss}


class SegmentationAttack:
    """`atk(images, masks) -> adversarial images` maximising a pixel loss on `logits_fn(x)`.

    name: `fgsm` (one step of size ε on the pixel CE), `pgd` (Madry et al. 2018 on the pixel CE),
    `segpgd` (Gu et al. 2022), `cospgd` (Agnihotri et al. 2024). norm: `linf` (sign steps, clamp
    to [−ε, ε]) or `l2` (normalised-gradient steps, rescale to ‖δ‖₂ ≤ ε), as torchattacks' PGD/PGDL2.
    eps: budget in pixel units; alpha: step size (default 2.5·ε/steps); steps: iterations (fgsm: 1);
    random_start: uniform start in the ε-ball, drawn from a local generator seeded by `seed` (the
    global RNG is never used); ignore_index: mask value excluded from the loss (None: none);
    logits_fn: x → logits, default the model's `mask_logits`. The model runs in eval mode; its
    modes and the global RNG are restored afterwards, also on error.
    images (N, C, H, W) in [0, 1], masks (N, H, W) int64 → adversarial (N, C, H, W) in [0, 1].
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str = "pgd",
        eps: float = 8 / 255,
        norm: str = "linf",
        steps: int = DEFAULT_STEPS,
        alpha: float | None = None,
        random_start: bool = True,
        seed: int = 0,
        ignore_index: int | None = IGNORE_INDEX,
        logits_fn: LogitsFn | None = None,
    ) -> None:
        self.name, self.norm, self.eps, self.steps = check_attack(
            "segmentation", name, SEGMENTATION_ATTACKS, norm, eps, steps
        )
        self.model = model
        fgsm = self.name == "fgsm"
        self.alpha = (
            self.eps if fgsm else (float(alpha) if alpha is not None else default_alpha(self.eps, self.steps))
        )
        self.random_start = False if fgsm else bool(random_start)
        self.seed = int(seed)
        self.ignore_index = ignore_index
        self.logits_fn = logits_fn if logits_fn is not None else pixel_logits_fn(model)
        self.loss = LOSSES[self.name]
        self._gen = make_generator(self.seed)

    def __call__(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = images.detach()
        if self.eps == 0:
            return x.clone().clamp(0, 1)
        target = target.to(x.device)
        with isolated(self.model), torch.enable_grad():
            adv = random_start(x, self.eps, self.norm, self._gen) if self.random_start else x.clone()
            for t in range(self.steps):
                adv.requires_grad_(True)
                loss = self.loss(self.logits_fn(adv), target, self.ignore_index, t, self.steps)
                (grad,) = torch.autograd.grad(loss, adv)
                adv = adv.detach() + self.alpha * ascent_direction(grad, self.norm)
                adv = project(adv, x, self.eps, self.norm).detach()
        return adv

    def __repr__(self) -> str:
        return (
            f"SegmentationAttack({self.name}, norm={self.norm}, eps={self.eps:g}, steps={self.steps}, "
            f"alpha={self.alpha:g}, random_start={self.random_start}, ignore_index={self.ignore_index})"
        )
