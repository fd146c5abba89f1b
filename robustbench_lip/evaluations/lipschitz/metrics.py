"""Certified accuracy / mIoU of one certificate, by task, each computed once.

`certified_metrics(...)` → (`Robustness`, the record's `radius_rules`):
- classifiers: clean accuracy; certified accuracy from the classifier radii (`heads`: a linear
  head's rule where recognised, else margin / (√2·U(A))); its optimistic estimate from the witnessed
  lower bound L (margin / (√2·L), never below the certified radius); certified CAM masks where the
  model's mask rule allows (`heads.cam_masks`), else a note saying why;
- segmenters and image-to-image models with masks: clean and certified mIoU / pixel accuracy
  (`radii.pixel_radii`), and its estimate;
- feature maps: a note (Lipschitz bounds only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lip.evaluations.lipschitz.heads import (
    CAM_RULE,
    CAM_UNCERTIFIED,
    I2I_RULE,
    cam_masks,
    classifier_radii,
    rules_of,
)
from robustbench_lip.evaluations.lipschitz.radii import (
    Robustness,
    accuracy_at,
    certified_segmentation,
    margin_radii,
    pixel_radii,
)
from robustbench_lip.lipschitz.bounds import UpperBound
from robustbench_lip.records.schema import Task
from robustbench_lip.scoring import Level, Scores

Data = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def _classifier(
    model: nn.Module,
    x: torch.Tensor,
    out: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    ub: UpperBound,
    low: float | None,
    eps: Sequence[float],
    notes: list[str],
) -> tuple[Robustness, dict[str, Any]]:
    rob = Robustness()
    lab = labels.to(out.device)
    pred = out.argmax(1)
    k = max(int(out.shape[1]), int(lab.max()) + 1 if lab.numel() else 1)
    rob.clean["accuracy"] = Scores(Level.IMAGE, k, None).update(pred.cpu(), lab.cpu()).summary()["accuracy"]
    if out.shape[1] < 2:
        return rob, rules_of(None)
    correct = pred == lab
    head, radii = None, None
    if ub.upper is not None:
        radii, head = classifier_radii(model, x, out, ub, notes)
        rob.certified_accuracy = accuracy_at(correct, radii, eps)
    if low is not None:
        est = margin_radii(out, low)
        if radii is not None and head is not None and head.ok and low > 0:
            est = torch.maximum(radii, est)  # a certified radius is a proven lower bound of the true one
        rob.certified_accuracy_estimate = accuracy_at(correct, est, eps)
    rules = rules_of(head)
    if masks is not None:
        if ub.upper is None:
            why: str | None = f"{CAM_UNCERTIFIED} (only the classification is)"
        else:
            phi = head.phi_upper if head is not None and head.ok else None
            why = cam_masks(model, x, masks, phi, eps, rob)
        if why is None:
            rules["masks"] = CAM_RULE
        else:
            notes.append(why)
    return rob, rules


def _segmenter(
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
    pred, _ = pixel_radii(out, 1.0)
    clean = Scores(Level.PIXEL, None, k).update(None, mk, pred.cpu(), mk.cpu()).summary()
    rob.clean["miou"], rob.clean["pixel_accuracy"] = clean["miou"], clean["accuracy"]
    r = certified_segmentation(out, mk, upper, eps, k)
    if r is not None:
        rob.certified_miou, rob.certified_pixel_accuracy = r
    re = certified_segmentation(out, mk, lower, eps, k)
    if re is not None:
        rob.certified_miou_estimate = re[0]
    return rob


def certified_metrics(
    task: Task,
    model: nn.Module,
    x: torch.Tensor,
    out: torch.Tensor,
    data: Data,
    ub: UpperBound,
    low: float | None,
    eps: Sequence[float],
    num_mask_classes: int | None,
    notes: list[str],
) -> tuple[Robustness, dict[str, Any] | None]:
    """(certified robustness, radius rules — None when nothing was certified from data) by task;
    data = (images, labels, masks), all None without data; low: the witnessed lower bound of L(A)."""
    images, labels, masks = data
    if images is None:
        if task is Task.FEATURES:
            notes.append(_features_note(out))
        return Robustness(), None
    if task is Task.CLASSIFICATION and labels is not None and out.dim() == 2:
        return _classifier(model, x, out, labels, masks, ub, low, eps, notes)
    if task is Task.FEATURES:
        notes.append(_features_note(out))
        return Robustness(), None
    if masks is None or out.dim() != 4:
        return Robustness(), None
    rob = _segmenter(out, masks, ub.upper, low, eps, num_mask_classes, notes)
    binary = rob.certified_pixel_accuracy is not None and out.shape[1] == 1
    return rob, ({"classifier": None, "head": None, "masks": I2I_RULE} if binary else None)


def _features_note(out: torch.Tensor) -> str:
    return f"the output {tuple(out.shape[1:])} is a feature map: Lipschitz bounds only, no certified radius"


__all__ = ["certified_metrics"]
