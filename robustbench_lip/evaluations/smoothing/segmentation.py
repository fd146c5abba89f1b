"""Randomized smoothing for segmentation: SegCertify (Fischer, Baader & Vechev, NeurIPS 2021).

Per pixel i, the smoothed segmenter's class is the class most often predicted under Gaussian noise.
`smoothed_segment_certify` follows SegCertify's CERTIFY:
1. n0 selection samples give each pixel's top class ĉ_i;
2. n fresh samples give n_i = how often pixel i is labelled ĉ_i;
3. per pixel the exact one-sided binomial p-value of H0: P(pixel i = ĉ_i) ≤ tau;
4. Holm (default) or Bonferroni over the image's pixels, family-wise error ≤ alpha; pixels whose null
   is not rejected abstain (label ABSTAIN = −1);
5. every non-abstained pixel is certified with the one common radius R = σ·Φ⁻¹(tau): with probability
   ≥ 1 − alpha (per image), for every δ with ‖δ‖₂ ≤ R, all non-abstained pixels of the smoothed
   segmentation of x + δ keep their class.
With Bonferroni the certificate also gives a per-pixel radius σ·Φ⁻¹(p_i_lower), p_i_lower the
Clopper–Pearson bound at level 1 − alpha/N (N pixels), simultaneous over the pixels; Holm has no such
per-pixel radius, only the common one.

The decision rule (sampling) maps the model's output to a label map: argmax of (B, K, H, W)
logits, `out > 0` for a (B, 1, H, W) image-to-image output ("auto" picks one), or any callable — e.g.
`forward=model.mask_logits` with rule "argmax" for mResNet CAM masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.smoothing.sampling import (
    Decision,
    Forward,
    Progress,
    Rule,
    as_batch,
    check_positive_int,
    check_sigma,
    generators,
    isolated,
    model_device,
    sample_votes,
)
from robustbench_lip.evaluations.smoothing.settings import SMOOTHING
from robustbench_lip.evaluations.smoothing.statistics import (
    check_alpha,
    check_correction,
    cp_lower,
    fwer_reject,
    pvalue_above,
    radius,
)

__all__ = ["ABSTAIN", "SegCertificate", "pixel_certify", "segment_votes", "smoothed_segment_certify"]

ABSTAIN = -1


def check_tau(tau: float, allow_one: bool = False) -> float:
    """tau must lie in [1/2, 1) (or [1/2, 1] with allow_one: at tau = 1 every pixel abstains)."""
    t = float(tau)
    if not (0.5 <= t < 1.0 or (allow_one and t == 1.0)):
        raise RlipError(f"tau must lie in [0.5, 1), got {tau!r}")
    return t


@dataclass
class SegCertificate:
    """SegCertify's answer for one image (tensors on the CPU).

    pred (H, W) int64: certified class per pixel, ABSTAIN (−1) where abstained. radius: the common
    certified ℓ2 radius σ·Φ⁻¹(tau) of every non-abstained pixel. top (H, W): the class selected from the
    n0 samples; count (H, W): its votes among the n estimation samples. pixel_radius (H, W) float64
    (Bonferroni only): per-pixel simultaneous radius, NaN where the bound is ≤ 1/2.
    """

    pred: torch.Tensor
    radius: float
    tau: float
    alpha: float
    correction: str
    top: torch.Tensor
    count: torch.Tensor
    n: int
    pixel_radius: torch.Tensor | None = None

    @property
    def abstention_rate(self) -> float:
        """Fraction of abstained pixels."""
        return float((self.pred == ABSTAIN).double().mean())

    def to_dict(self) -> dict[str, Any]:
        """The scalars (no pixel maps)."""
        return {
            "radius": self.radius,
            "tau": self.tau,
            "alpha": self.alpha,
            "correction": self.correction,
            "n": self.n,
            "abstention_rate": self.abstention_rate,
        }


def pixel_certify(
    top: torch.Tensor, count: torch.Tensor, n: int, *, alpha: float, tau: float, correction: str = "holm"
) -> torch.Tensor:
    """One image's certified label map: `top` (H, W) where the per-pixel null P(top) ≤ tau is rejected
    under `correction` at family-wise level alpha over the image's pixels, ABSTAIN elsewhere (all of
    them at tau = 1)."""
    pv = pvalue_above(count.cpu().numpy(), n, check_tau(tau, allow_one=True))
    reject = torch.from_numpy(fwer_reject(pv, check_alpha(alpha), correction))
    return torch.where(reject, top.cpu(), torch.full_like(top.cpu(), ABSTAIN))


def segment_votes(
    model: nn.Module,
    images: torch.Tensor,
    *,
    sigma: float,
    n0: int,
    n: int,
    batch_size: int = SMOOTHING.batch_size,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    forward: Forward | None = None,
    rule: Rule = "auto",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Monte Carlo part of SegCertify for images (M, C, H, W): (top (M, H, W) from n0 samples, count
    (M, H, W) of top among n fresh samples, number of classes K); tensors on the CPU.

    Seeding, `indices`, `forward`, `rule` and `progress` (noise samples) as in `smoothed_certify`.
    """
    dev = model_device(model, device)
    x = as_batch(images, dev)
    idx = list(range(x.shape[0])) if indices is None else [int(i) for i in indices]
    if len(idx) != x.shape[0]:
        raise ValueError(f"{len(idx)} indices for {x.shape[0]} images")
    sigma = check_sigma(sigma)
    for name, v in (("n0", n0), ("n", n), ("batch_size", batch_size)):
        check_positive_int(name, v)
    decision = Decision(rule, num_classes)
    fwd = forward if forward is not None else model
    with isolated(model):
        phases = [(n0, generators(seed, idx, "select", dev)), (n, generators(seed, idx, "estimate", dev))]
        votes = sample_votes(fwd, decision, x, phases, sigma, batch_size, progress)
    if votes.dim() != 5:
        raise RlipError(f"the decision rule must give label maps (B, H, W), got {votes.dim() - 3} dims")
    top = votes[:, 0].argmax(1)
    count = votes[:, 1].gather(1, top.unsqueeze(1)).squeeze(1)
    return top.cpu(), count.cpu(), int(decision.num_classes)  # type: ignore[arg-type]


def _bonferroni_radius(count: torch.Tensor, n: int, alpha: float, sigma: float) -> torch.Tensor:
    low = cp_lower(count.numpy(), n, alpha / max(count.numel(), 1))
    r = np.where(low > 0.5, radius(low, sigma), np.nan)
    return torch.from_numpy(r)


def smoothed_segment_certify(
    model: nn.Module,
    images: torch.Tensor,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 1000,
    alpha: float = SMOOTHING.alpha,
    tau: float = 0.75,
    correction: str = "holm",
    batch_size: int = SMOOTHING.batch_size,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    forward: Forward | None = None,
    rule: Rule = "auto",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> list[SegCertificate]:
    """SegCertify's CERTIFY for each of `images` (C, H, W) or (M, C, H, W) in [0, 1] (n0, n, tau: the
    defaults of the authors' code). Each image's certificate holds with probability ≥ 1 − alpha."""
    alpha, tau, correction = check_alpha(alpha), check_tau(tau), check_correction(correction)
    top, count, _ = segment_votes(
        model, images, sigma=sigma, n0=n0, n=n, batch_size=batch_size, seed=seed, indices=indices,
        forward=forward, rule=rule, num_classes=num_classes, device=device, progress=progress,
    )  # fmt: skip
    r = float(radius(tau, float(sigma)))
    out = []
    for t, c in zip(top, count, strict=True):
        pred = pixel_certify(t, c, n, alpha=alpha, tau=tau, correction=correction)
        pix = _bonferroni_radius(c, n, alpha, float(sigma)) if correction == "bonferroni" else None
        out.append(SegCertificate(pred, r, tau, alpha, correction, t, c, n, pix))
    return out
