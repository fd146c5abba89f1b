"""Classifier radii from the structure of the last layers, on top of the √2·U(A) rule.

- **Sample radii.** Where the graph of x ↦ logits ends in a linear layer z = W·φ(x) + b (a Linear,
  a matrix product, or a 1×1 convolution followed by the spatial mean: the CAM head),
  r = min_{j≠i} (z_i − z_j) / (‖W_i − W_j‖·U(φ)) (`lipschitz.margins.head_radii`). Both it and
  margin / (√2·U(A)) are certified, so each sample gets the larger of the two. Elsewhere the √2 rule
  stays, and the record says why.
- **Mask radii.** A classifier whose masks follow a certifiable rule — the constrained mResNet
  (`models.constrained.LipResNet`: label(p) = argmax over [τ, upsampled class maps], a fixed
  threshold τ, no per-image normalisation) — gets per-pixel radii (`cam_masks.cam_pixel_radii`)
  and so a certified pixel accuracy and mIoU (pixels not provably stable count as wrong). The
  min–max-normalised CAM masks of `mresnet18` have no certified rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.lipschitz.radii import Robustness, margin_radii, masks_at
from robustbench_lip.lipschitz.bounds import UpperBound
from robustbench_lip.lipschitz.margins import LinearHead, head_radii, linear_head

SQRT2_RULE = "margin / (√2·U(A))"
HEAD_RULE = "max(min_j (z_i − z_j) / (‖W_i − W_j‖·U(φ)), margin / (√2·U(A)))"
CAM_RULE = (
    "label(p) = argmax[τ, upsampled class maps] (fixed τ); "
    "r_p = min_j (s_l(p) − s_j(p)) / (‖W'_l − W'_j‖·ρ·U(φ))"
)
I2I_RULE = "|z_p| / U(A) (mask z > 0)"
CAM_UNCERTIFIED = "CAM masks are not certified"
BATCH = 64


def classifier_radii(
    model: nn.Module, x: torch.Tensor, out: torch.Tensor, ub: UpperBound, notes: list[str]
) -> tuple[torch.Tensor, LinearHead]:
    """(certified radii (N,) float64 of argmax(out), the recognised head) for U(A) = ub.upper (not
    None): the larger of the head rule's and margin / (√2·U(A)) where a linear head is recognised
    (on the graph `ub` lowered), else the √2 rule alone, with a note saying why."""
    assert ub.upper is not None
    head = linear_head(model, tuple(x.shape[1:]), ub.mode, lowered=ub.lowered)
    r = margin_radii(out, ub.upper)
    if not head.ok:
        notes.append(f"classifier radii from √2·U(A): {head.reason}")
        return r, head
    return torch.maximum(r, head_radii(out, head)), head


def cam_masks(
    model: nn.Module,
    x: torch.Tensor,
    masks: torch.Tensor,
    phi_upper: float | None,
    eps: Sequence[float],
    rob: Robustness,
) -> str | None:
    """Certified CAM-mask metrics into `rob` when the model's mask rule is certifiable (phi_upper:
    the certified bound of the CAM features); the note saying why not otherwise (None: certified)."""
    from robustbench_lip.evaluations.lipschitz.cam_masks import cam_pixel_radii

    if phi_upper is None:
        return "no certified bound of the CAM features"
    k = getattr(getattr(model, "config", None), "num_mask_classes", None)
    if k is None:
        return "the model has no mask classes: masks not certified"
    if not (hasattr(model, "mask_threshold") and hasattr(model, "features")):
        return f"{CAM_UNCERTIFIED} (their min–max normalisation has no Lipschitz bound)"
    try:
        parts = [cam_pixel_radii(model, x[i : i + BATCH], phi_upper) for i in range(0, x.shape[0], BATCH)]
    except RlipError as e:
        return f"{CAM_UNCERTIFIED}: {e}"
    pred = torch.cat([p[0] for p in parts])
    radii = torch.cat([p[1] for p in parts])
    rob.certified_miou, rob.certified_pixel_accuracy = masks_at(pred, radii, masks, eps, int(k))
    clean_miou, clean_pix = masks_at(pred, torch.full(radii.shape, math.inf), masks, [0.0], int(k))
    rob.clean["miou"], rob.clean["pixel_accuracy"] = clean_miou["0"], clean_pix["0"]
    return None


def rules_of(head: LinearHead | None) -> dict[str, Any]:
    """The record's `radius_rules` of a classifier (masks filled in by the caller)."""
    if head is None or not head.ok:
        return {"classifier": SQRT2_RULE, "head": None, "masks": None}
    return {
        "classifier": HEAD_RULE,
        "head": {"structure": head.structure, "features_upper": head.lip_features},
        "masks": None,
    }


__all__ = [
    "CAM_RULE",
    "CAM_UNCERTIFIED",
    "HEAD_RULE",
    "I2I_RULE",
    "SQRT2_RULE",
    "cam_masks",
    "classifier_radii",
    "rules_of",
]
