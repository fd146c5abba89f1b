"""Smoothed segmentation certificates are monotone in the radius, r = 0 included (issue 26)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from robustbench_lip.evaluations.smoothing.summary import certify_smoothed, radius_key

SIGMA = 0.25


class _WrongWhenLucky(nn.Module):
    """Logits (N, 3, 4, 4) of a constant-0.5 image: the left half is always class 1 (right); each pixel
    of the right half (true class 2) says class 1 when its noise exceeds −σ/2 (p = Φ(0.5) ≈ 0.69),
    else class 2 — certified wrong at r = 0 (tau 1/2), abstained at 36/255 (tau = Φ(0.565) ≈ 0.71)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 3, 4, 4)
        out[:, 1, :, :2] = 5.0
        lucky = (x[:, 0, :, 2:] - 0.5) > -SIGMA / 2
        out[:, 1, :, 2:] = torch.where(lucky, 5.0, -5.0)
        return out


class _Data:
    def __init__(self) -> None:
        self.mask = torch.ones(4, 4, dtype=torch.long)
        self.mask[:, 2:] = 2

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        return torch.full((1, 4, 4), 0.5), 1, self.mask


def test_certified_figures_never_rise_with_the_radius() -> None:
    radii = (72 / 255, 36 / 255, 0.5, 0.02)  # unsorted on purpose
    s = certify_smoothed(
        _WrongWhenLucky(), _Data(), task="segmentation", sigma=SIGMA, n0=10, n=2000, radii=radii, seed=5
    )
    order = [radius_key(r) for r in sorted(radii)]
    miou = [s.clean["miou"]] + [s.certified_miou[k] for k in order]
    acc = [s.clean["pixel_accuracy"]] + [s.certified_pixel_accuracy[k] for k in order]
    abst = [s.abstention_rate] + [s.pixel_abstention_rate[k] for k in order]
    # per radius, r = 0 certifies the wrong half (mIoU 1/4) and 36/255 abstains on it (mIoU 1/2)
    assert s.clean["miou"] < 0.3
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(miou)), miou
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(acc)), acc
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(abst)), abst
