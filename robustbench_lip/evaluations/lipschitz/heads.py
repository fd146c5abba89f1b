"""Classifier certificates from the structure of the last layers, on top of the √2·U(A) rule.

- **Sample radii.** Where the graph of x ↦ logits ends in a linear layer z = W·φ(x) + b (a Linear,
  a matrix product, or a 1×1 convolution followed by the spatial mean: the CAM head),
  r = min_{j≠i} (z_i − z_j) / (‖W_i − W_j‖·U(φ)) (`lipschitz.margins.head_radii`). Both it and
  margin / (√2·U(A)) are certified, so each sample gets the larger of the two. Elsewhere the √2 rule
  stays, and the record says why.
- **Mask radii.** A classifier whose masks follow a certifiable rule — the constrained mResNet
  (`models.constrained.LipResNet`: label(p) = argmax over [τ, upsampled class maps], a fixed
  threshold τ, no per-image normalisation) — gets per-pixel radii (`certified_masks.cam_pixel_radii`)
  and so a certified pixel accuracy and mIoU (pixels not provably stable count as wrong). The
  min–max-normalised CAM masks of `mresnet18` have no certified rule.

`refine_classifier(...)` updates a `Robustness` in place and returns the rules used (the certify
record's `radius_rules`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.lipschitz.radii import accuracy_at, masks_at
from robustbench_lip.lipschitz.bounds import UpperBound
from robustbench_lip.lipschitz.margins import head_radii, linear_head, margin_radii

SQRT2_RULE = "margin / (√2·U(A))"
HEAD_RULE = "max(min_j (z_i − z_j) / (‖W_i − W_j‖·U(φ)), margin / (√2·U(A)))"
CAM_RULE = (
    "label(p) = argmax[τ, upsampled class maps] (fixed τ); "
    "r_p = min_j (s_l(p) − s_j(p)) / (‖W'_l − W'_j‖·ρ·U(φ))"
)


def _cam_masks(
    model: nn.Module,
    x: torch.Tensor,
    masks: torch.Tensor,
    phi_upper: float,
    eps: Sequence[float],
    rob: Any,
) -> str | None:
    """Certified CAM-mask metrics into `rob` when the model's mask rule is certifiable; the note
    saying why not otherwise (None when certified)."""
    from robustbench_lip.evaluations.lipschitz.cam_masks import cam_pixel_radii

    k = getattr(getattr(model, "config", None), "num_mask_classes", None)
    if k is None:
        return "the model has no mask classes: masks not certified"
    if not (hasattr(model, "mask_threshold") and hasattr(model, "features")):
        return "CAM masks are not certified (their min–max normalisation has no Lipschitz bound)"
    try:
        parts = [cam_pixel_radii(model, x[i : i + 64], phi_upper) for i in range(0, x.shape[0], 64)]
    except RlipError as e:
        return f"CAM masks are not certified: {e}"
    pred = torch.cat([p[0] for p in parts])
    radii = torch.cat([p[1] for p in parts])
    rob.certified_miou, rob.certified_pixel_accuracy = masks_at(pred, radii, masks, eps, int(k))
    clean_miou, clean_pix = masks_at(pred, torch.full(radii.shape, math.inf), masks, [0.0], int(k))
    rob.clean["miou"], rob.clean["pixel_accuracy"] = clean_miou["0"], clean_pix["0"]
    return None


def refine_classifier(
    rob: Any,
    model: nn.Module,
    x: torch.Tensor,
    out: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    ub: UpperBound,
    eps: Sequence[float],
    notes: list[str],
    low: float | None = None,
) -> dict[str, Any]:
    """Replace rob.certified_accuracy by the head rule's where it applies (and its optimistic
    estimate by the larger of the head radius and margin / (√2·L), L = `low` the witnessed lower
    bound, so the estimate is never below the certified figure) and add certified CAM masks where
    the model's mask rule allows; returns {"classifier", "head", "masks"} rules."""
    rules: dict[str, Any] = {"classifier": SQRT2_RULE, "head": None, "masks": None}
    if ub.upper is None:
        return rules
    head = linear_head(model, tuple(x.shape[1:]), ub.mode, lowered=ub.lowered)
    r = margin_radii(out, ub.upper)
    if not head.ok:
        notes.append(f"classifier radii from √2·U(A): {head.reason}")
    else:
        r = torch.maximum(r, head_radii(out, head))
        rules["classifier"] = HEAD_RULE
        rules["head"] = {"structure": head.structure, "features_upper": head.lip_features}
        correct = out.argmax(1) == labels.to(out.device)
        rob.certified_accuracy = accuracy_at(correct, r, eps)
        if low is not None and low > 0:  # a certified radius is a proven lower bound of the true one
            rob.certified_accuracy_estimate = accuracy_at(
                correct, torch.maximum(r, margin_radii(out, low)), eps
            )
    if masks is None:
        return rules
    notes[:] = [n for n in notes if not n.startswith("CAM masks are not certified")]
    phi = head.phi_upper if head.ok else None
    why = "no certified bound of the CAM features" if phi is None else None
    why = why or _cam_masks(model, x, masks, phi, eps, rob)  # type: ignore[arg-type]
    if why is None:
        rules["masks"] = CAM_RULE
    else:
        notes.append(why)
    return rules


I2I_RULE = "|z_p| / U(A) (mask z > 0)"


def radius_rules(
    task: Any,
    rob: Any,
    model: nn.Module,
    x: torch.Tensor,
    out: torch.Tensor,
    data: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
    ub: UpperBound,
    eps: Sequence[float],
    notes: list[str],
    low: float | None = None,
) -> dict[str, Any] | None:
    """The certify hook: refine a classifier's certificate (`refine_classifier`; low: the witnessed
    lower bound of L(A)) and name the rules used; None when nothing was certified from data."""
    images, labels, masks = data
    if images is None:
        return None
    if str(getattr(task, "value", task)) == "classification" and labels is not None and out.dim() == 2:
        return refine_classifier(rob, model, x, out, labels, masks, ub, eps, notes, low)
    if rob.certified_pixel_accuracy is not None and out.dim() == 4 and out.shape[1] == 1:
        return {"classifier": None, "head": None, "masks": I2I_RULE}
    return None


__all__ = [
    "CAM_RULE",
    "HEAD_RULE",
    "I2I_RULE",
    "SQRT2_RULE",
    "accuracy_at",
    "masks_at",
    "radius_rules",
    "refine_classifier",
]
