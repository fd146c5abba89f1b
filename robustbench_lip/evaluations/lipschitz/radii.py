"""Certified ℓ2 robustness from a certified Lipschitz bound U of the forward map (pixel units).

Certified radii:
- classifier: margin / (√2·U) with margin = top logit − runner-up (a pair of logits moves by at
  most √2·‖ΔA‖ ≤ √2·U·‖δ‖);
- K-class segmenter (forward (N, K, H, W)): per pixel margin / (√2·U), U the bound of the whole
  output map (a pixel's logit vector moves by at most ‖ΔA‖);
- binary image-to-image model (1 channel, mask = z > 0, mask logits [0, z]): |z| / U, since the
  pair difference of [0, z] is z itself and |Δz_pixel| ≤ ‖ΔA‖ ≤ U‖δ‖; [0, z] has the constant of z.
A pixel counts as certified-correct at ε when it is correct and its radius > ε; uncertified
pixels get an impossible label, so they are wrong for every class in the certified mIoU.
mResNet's CAM masks are not certified (their map, upsampled class maps, is not the bounded
forward map); only its classification is. The same functions with a witnessed lower bound in
place of U give the optimistic estimates (labelled `_estimate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.lipschitz.bounds import UpperBound
from robustbench_lip.lipschitz.lower import LowerBound
from robustbench_lip.metrics import ConfusionMatrix
from robustbench_lip.records.schema import Task
from robustbench_lip.scoring import Level, Scores

SQRT2 = math.sqrt(2.0)


def _top2_margin(logits: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    top = logits.topk(2, dim=dim)
    return top.indices.select(dim, 0), top.values.select(dim, 0) - top.values.select(dim, 1)


def certified_classification(
    logits: torch.Tensor, labels: torch.Tensor, lipschitz: float | None, eps: Sequence[float]
) -> dict[str, float] | None:
    """Fraction of samples correctly classified with ℓ2 radius margin / (√2·L) > ε, per ε."""
    if lipschitz is None or logits.shape[1] < 2:
        return None
    pred, margin = _top2_margin(logits)
    radius = margin / (SQRT2 * lipschitz) if lipschitz > 0 else torch.full_like(margin, math.inf)
    return accuracy_at(pred == labels, radius, eps)


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


def _pixel_pred_radius(out: torch.Tensor, lipschitz: float) -> tuple[torch.Tensor, torch.Tensor]:
    if out.shape[1] == 1:  # binary: mask = z > 0, logits [0, z]
        z = out[:, 0]
        r = z.abs() / lipschitz if lipschitz > 0 else torch.full_like(z, math.inf)
        return (z > 0).long(), r
    pred, margin = _top2_margin(out)
    r = margin / (SQRT2 * lipschitz) if lipschitz > 0 else torch.full_like(margin, math.inf)
    return pred, r


def certified_segmentation(
    out: torch.Tensor, masks: torch.Tensor, lipschitz: float | None, eps: Sequence[float], num_classes: int
) -> tuple[dict[str, float | None], dict[str, float]] | None:
    """(certified mIoU per ε, certified pixel accuracy per ε) — uncertified pixels are wrong."""
    if lipschitz is None:
        return None
    pred, radius = _pixel_pred_radius(out, lipschitz)
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


def _classification_robustness(
    out: torch.Tensor, labels: torch.Tensor, upper: float | None, lower: float | None, eps: Sequence[float]
) -> Robustness:
    """Clean accuracy, certified accuracy (from the certified upper bound) and its optimistic
    estimate (from the witnessed lower bound) of a classifier's logits (N, K)."""
    rob = Robustness()
    lab = labels.to(out.device)
    pred = out.argmax(1)
    k = max(int(out.shape[1]), int(lab.max()) + 1 if lab.numel() else 1)
    rob.clean["accuracy"] = Scores(Level.IMAGE, k, None).update(pred.cpu(), lab.cpu()).summary()["accuracy"]
    rob.certified_accuracy = certified_classification(out, lab, upper, eps)
    rob.certified_accuracy_estimate = certified_classification(out, lab, lower, eps)
    return rob


def _segmentation_robustness(
    out: torch.Tensor,
    masks: torch.Tensor,
    upper: float | None,
    lower: float | None,
    eps: Sequence[float],
    num_mask_classes: int | None,
    notes: list[str],
) -> Robustness:
    """Clean and certified mIoU / pixel accuracy of a segmenter's output (N, K, H, W) (K = 1:
    binary mask z > 0); a note instead when the channels do not match the mask classes."""
    rob = Robustness()
    k = num_mask_classes
    binary = out.shape[1] == 1 and (k in (None, 2))
    if binary:
        k = 2
    if k is None or (not binary and out.shape[1] != k):
        notes.append(f"output channels {out.shape[1]} do not match the mask classes {k}: no segmentation")
        return rob
    mk = masks.to(out.device)
    pred, _ = _pixel_pred_radius(out, 1.0)
    clean = Scores(Level.PIXEL, None, k).update(None, mk, pred.cpu(), mk.cpu()).summary()
    rob.clean["miou"], rob.clean["pixel_accuracy"] = clean["miou"], clean["accuracy"]
    r = certified_segmentation(out, mk, upper, eps, k)
    if r is not None:
        rob.certified_miou, rob.certified_pixel_accuracy = r
    re = certified_segmentation(out, mk, lower, eps, k)
    if re is not None:
        rob.certified_miou_estimate = re[0]
    return rob


def robustness(
    task: Task,
    out: torch.Tensor,
    data: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
    ub: UpperBound,
    low_a: LowerBound,
    eps: Sequence[float],
    num_mask_classes: int | None,
    notes: list[str],
) -> Robustness:
    """Certified robustness by task; data = (images, labels, masks), all None without data."""
    images, labels, masks = data
    if images is not None and task is Task.CLASSIFICATION and labels is not None and out.dim() == 2:
        if masks is not None:
            notes.append("CAM masks are not certified (only the classification is)")
        return _classification_robustness(out, labels, ub.upper, low_a.lower, eps)
    if task is Task.FEATURES:
        notes.append(
            f"the output {tuple(out.shape[1:])} is a feature map: Lipschitz bounds only, no certified radius"
        )
    elif images is not None and masks is not None and out.dim() == 4:
        return _segmentation_robustness(out, masks, ub.upper, low_a.lower, eps, num_mask_classes, notes)
    return Robustness()
