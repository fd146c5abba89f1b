"""Certified CAM masks shared by the constrained classifiers (`LipResNet`, `SLLNet` with head "cam").

Label space as `mresnet18`: class k → label k + offset, offset = M − K. `mask_logits` (N, M, H, W) =
cat([τ, class maps upsampled bilinearly]) (with offset 0 the map of class 0 is dropped: it is
background), τ = `mask_threshold`, a constant: no per-image normalisation, so the rule can be
certified (`robustbench_lip.evaluations.lipschitz.cam_masks.cam_pixel_radii`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_lip.errors import RlipError


def check_mask_classes(arch: str, num_classes: int, num_mask_classes: int | None) -> int:
    """M: num_classes + 1 when None; RlipError unless M ∈ {K, K + 1}."""
    k = int(num_classes)
    m = k + 1 if num_mask_classes is None else int(num_mask_classes)
    if m not in (k, k + 1):
        raise RlipError(
            f"{arch}: num_mask_classes must be num_classes + 1 (label k + 1 for class k) or "
            f"num_classes (class 0 = background), got {m} for {k} classes"
        )
    return m


class CamMasks:
    """Mixin: needs `class_maps(x)` (N, K, h, w), `mask_offset` and `mask_threshold`."""

    mask_offset: int
    mask_threshold: float

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - provided by the model
        raise NotImplementedError

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Class maps upsampled bilinearly (align_corners=False) to the input size: (N, K, H, W)."""
        return F.interpolate(self.class_maps(x), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, M, H, W) = cat([τ, segment(x)]) (class 0's map dropped when offset = 0)."""
        up = self.segment(x)
        if self.mask_offset == 0:
            up = up[:, 1:]
        return torch.cat([torch.full_like(up[:, :1], self.mask_threshold), up], dim=1)

    def predict_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Label map (N, H, W) int64 = argmax of `mask_logits` (ties: the lower label)."""
        with torch.no_grad():
            return self.mask_logits(x).argmax(dim=1)


__all__ = ["CamMasks", "check_mask_classes"]
