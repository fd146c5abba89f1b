"""Certified ℓ2 radii from a certified Lipschitz bound U of the forward map (pixel units), and the
accuracy / mIoU they certify at each ε — the one home of each rule.

- `margin_radii`: margin / (√2·U), margin = top logit − runner-up along the class axis (a pair of
  logits moves by at most √2·‖ΔA‖ ≤ √2·U·‖δ‖). Classifiers (N, K), and K-class segmenters
  (N, K, H, W) per pixel, U the bound of the whole output map.
- `pixel_radii`: per-pixel (prediction, radius) of a mask: K-class logits → `margin_radii`; a binary
  image-to-image model (1 channel, mask = z > 0, mask logits [0, z]) → |z_p| / U, since the pair
  difference of [0, z] is z itself and |Δz_p| ≤ ‖ΔA‖ ≤ U‖δ‖.
A sample or pixel counts as certified-correct at ε when it is correct and its radius > ε; uncertified
pixels get an impossible label, so they are wrong for every class in the certified mIoU. The same
functions with a witnessed lower bound in place of U give the optimistic estimates (`_estimate`).
The classifier rules that beat √2·U (linear heads, CAM masks) are in `heads`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.metrics import ConfusionMatrix

SQRT2 = math.sqrt(2.0)


def _scaled(values: torch.Tensor, lipschitz: float) -> torch.Tensor:
    """values / U (float64); U = 0: inf where the value is > 0, else 0."""
    if lipschitz > 0:
        return values / lipschitz
    return torch.where(values > 0, math.inf, 0.0).to(torch.float64)


def margin_radii(logits: torch.Tensor, lipschitz: float, dim: int = 1) -> torch.Tensor:
    """Certified radii (float64, `logits` without axis `dim`) of argmax along `dim`:
    (z_(1) − z_(2)) / (√2·U)."""
    top = logits.detach().to(torch.float64).topk(2, dim=dim).values
    return _scaled(top.select(dim, 0) - top.select(dim, 1), SQRT2 * lipschitz)


def pixel_radii(out: torch.Tensor, lipschitz: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask labels (N, H, W) int64, certified radii (N, H, W) float64) of a segmenter's output
    (N, K, H, W) (K = 1: binary mask z > 0, radius |z_p| / U; else argmax, `margin_radii`)."""
    if out.shape[1] == 1:
        z = out.detach()[:, 0]
        return (z > 0).long(), _scaled(z.to(torch.float64).abs(), lipschitz)
    return out.argmax(1), margin_radii(out, lipschitz)


def accuracy_at(correct: torch.Tensor, radii: torch.Tensor, eps: Sequence[float]) -> dict[str, float]:
    """{ε text: fraction of samples correct with radius > ε}; correct, radii: (N,)."""
    ok = correct.to(radii.device)
    return {format_eps(e): float((ok & (radii > e)).double().mean()) for e in eps}


def masks_at(
    pred: torch.Tensor, radii: torch.Tensor, masks: torch.Tensor, eps: Sequence[float], k: int
) -> tuple[dict[str, float | None], dict[str, float]]:
    """(certified mIoU, certified pixel accuracy) per ε of per-pixel predictions `pred` with radii
    `radii` (same shape as `masks`, k classes): a pixel with radius ≤ ε counts as wrong."""
    miou: dict[str, float | None] = {}
    pix: dict[str, float] = {}
    m = masks.to(pred.device)
    for e in eps:
        ok = radii > e
        p = torch.where(ok, pred, torch.full_like(pred, k))
        cm = ConfusionMatrix(k + 1).update(p.flatten().cpu(), m.flatten().cpu())
        iou = cm.per_class_iou()[:k]
        miou[format_eps(e)] = None if bool(torch.isnan(iou).all()) else float(torch.nanmean(iou))
        pix[format_eps(e)] = float(((p == m) & ok).float().mean())
    return miou, pix


def certified_classification(
    logits: torch.Tensor, labels: torch.Tensor, lipschitz: float | None, eps: Sequence[float]
) -> dict[str, float] | None:
    """Fraction of samples correctly classified with ℓ2 radius margin / (√2·L) > ε, per ε."""
    if lipschitz is None or logits.shape[1] < 2:
        return None
    correct = logits.argmax(1) == labels.to(logits.device)
    return accuracy_at(correct, margin_radii(logits, lipschitz), eps)


def certified_segmentation(
    out: torch.Tensor, masks: torch.Tensor, lipschitz: float | None, eps: Sequence[float], num_classes: int
) -> tuple[dict[str, float | None], dict[str, float]] | None:
    """(certified mIoU per ε, certified pixel accuracy per ε) — uncertified pixels are wrong."""
    if lipschitz is None:
        return None
    pred, radius = pixel_radii(out, lipschitz)
    return masks_at(pred, radius, masks, eps, num_classes)


@dataclass
class Robustness:
    """The certified-robustness part of a certificate (see Certificate)."""

    clean: dict[str, Any] = field(
        default_factory=lambda: {"accuracy": None, "miou": None, "pixel_accuracy": None}
    )
    certified_accuracy: dict[str, float] | None = None
    certified_accuracy_estimate: dict[str, float] | None = None
    certified_miou: dict[str, float | None] | None = None
    certified_miou_estimate: dict[str, float | None] | None = None
    certified_pixel_accuracy: dict[str, float] | None = None


__all__ = [
    "SQRT2",
    "Robustness",
    "accuracy_at",
    "certified_classification",
    "certified_segmentation",
    "margin_radii",
    "masks_at",
    "pixel_radii",
]
