"""Per-pixel certified ℓ2 radii of the CAM masks of classifiers (the binary masks z > 0 of
image-to-image models have theirs in `radii.pixel_radii`: |z_p| / U(A)).

CAM masks of `LipResNet` (mask rule: label(p) = argmax over [τ, s_1(p), …, s_K(p)], s = the class
maps upsampled bilinearly, τ = `mask_threshold`, background 0 on ties): s(p) = W·u_p(x) + b with W
the 1×1 head and u_p(x) = Σ_q a_pq·φ_q(x) the interpolated feature vector at p, φ = `features`.
|Δu_p| ≤ ‖a_p‖₂·‖Δφ‖ ≤ ρ·U(φ)·‖δ‖ with ρ = max_p ‖a_p‖₂ (≤ 1 for bilinear; computed exactly from the
separable interpolation matrices). The difference of the winning score ℓ and a competitor j changes
by at most ‖W′_ℓ − W′_j‖·ρ·U(φ)·‖δ‖, W′ = [0; W] (the background score τ is constant), so

    r_p = min_{j≠ℓ} (s_ℓ(p) − s_j(p)) / (‖W′_ℓ − W′_j‖ · ρ · U(φ))       (`cam_pixel_radii`).

The per-image min–max normalisation of `mresnet18`'s masks divides by the image's own range, which
has no global Lipschitz bound: those masks are not certified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.device import eval_mode
from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.margins import pair_norms


def _axis_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """The (n_out, n_in) matrix of 1-D bilinear interpolation (align_corners=False), float64."""
    eye = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)
    cols = F.interpolate(eye, size=(n_out, 1), mode="bilinear", align_corners=False)
    return cols[:, 0, :, 0].T


def interpolation_row_norm(in_hw: Sequence[int], out_hw: Sequence[int]) -> float:
    """ρ = max over output pixels of the ℓ2 norm of its bilinear interpolation weights."""
    mh = _axis_matrix(int(in_hw[0]), int(out_hw[0]))
    mw = _axis_matrix(int(in_hw[1]), int(out_hw[1]))
    return float(mh.norm(dim=1).max() * mw.norm(dim=1).max())


class _Features(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def features_bound(model: nn.Module, input_shape: Sequence[int] | None = None) -> float | None:
    """Certified U(φ) of `model.features` (the CAM head's input) at the model's input size."""
    from robustbench_lip.lipschitz.bounds import upper_bound

    shape = tuple(input_shape or model.config.input_size)
    return upper_bound(_Features(model), shape).upper


def _cam_parts(model: nn.Module) -> tuple[torch.Tensor, float, int]:
    for name in ("features", "head", "mask_threshold", "mask_offset"):
        if not hasattr(model, name):
            raise RlipError(f"{type(model).__name__} has no {name}: its masks have no certified rule")
    w = model.head.weight.detach()
    if w.dim() != 4 or tuple(w.shape[2:]) != (1, 1):
        raise RlipError("the CAM head is not a 1×1 convolution")
    return w[:, :, 0, 0].to(torch.float64), float(model.mask_threshold), int(model.mask_offset)


def cam_pixel_radii(
    model: nn.Module, x: torch.Tensor, lip_features: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (N, H, W) int64 = model.predict_mask(x), certified radii (N, H, W) float64) of the
    certified CAM mask rule (module docstring). lip_features: U(φ), computed when None."""
    w, _tau, offset = _cam_parts(model)
    if lip_features is None:
        lip_features = features_bound(model, tuple(x.shape[1:]))
        if lip_features is None:
            raise RlipError("the feature map of this model has no certified bound")
    with eval_mode(model), torch.no_grad():
        scores = model.mask_logits(x).to(torch.float64)  # (N, M, H, W)
        feat_hw = model.features(x[:1]).shape[-2:]
    rows = w[1:] if offset == 0 else w
    wp = torch.cat([torch.zeros(1, w.shape[1], dtype=torch.float64), rows])  # background row: 0
    d = pair_norms(wp).to(scores.device)  # (M, M)
    rho = interpolation_row_norm(feat_hw, x.shape[-2:])
    labels = scores.argmax(1)
    top = scores.gather(1, labels[:, None])
    margins = top - scores  # (N, M, H, W)
    den = d[labels].permute(0, 3, 1, 2) * (rho * lip_features)  # (N, M, H, W)
    r = torch.where(den > 0, margins / den.clamp_min(1e-300), torch.where(margins > 0, math.inf, 0.0))
    r.scatter_(1, labels[:, None], math.inf)
    return labels, r.amin(1)


__all__ = ["cam_pixel_radii", "features_bound", "interpolation_row_norm"]
