"""Acceptance: on every constrained model, after a few training steps on built-in data, the certifier's
bound stays ≤ 1 + small and above the witnessed lower bound, and a strong ℓ2 PGD (10 restarts, in ℝ^d)
inside 0.99× each certified radius flips no certified sample or pixel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustbench_lip.evaluations.lipschitz.cam_masks import cam_pixel_radii
from robustbench_lip.evaluations.lipschitz.radii import pixel_radii
from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.lower import lower_bounds
from robustbench_lip.lipschitz.margins import head_radii, linear_head
from tests.helpers.constrained import data, pgd_l2, trained

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


def _pixels(radii: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k) flat indices of the k smallest finite positive radii of each image."""
    r = radii.flatten(1).clone()
    r[~(torch.isfinite(r) & (r > 0))] = float("inf")
    assert bool(torch.isfinite(r).sum(1).ge(k).all()), "too few pixels with a finite positive radius"
    return r.argsort(1)[:, :k]


@pytest.mark.parametrize("arch", ["unet_lip_tiny", "unet_fne_tiny"])
def test_i2i_bounds_and_pixel_radii_hold(arch):
    model = trained(arch)
    shape = model.config.input_size
    ub = upper_bound(model, shape)
    assert ub.upper <= 1 + 1e-4
    if arch == "unet_fne_tiny":
        assert ub.reflection <= 1.0
    x, _, _ = data("lesions", 4, shape[-1], "test")
    low = lower_bounds(model, x, iters=10, steps=3)
    assert low.lower <= ub.upper
    with torch.no_grad():
        out = model(x)
    radii = pixel_radii(out, ub.upper)[1]  # the function the certificate uses
    sign = torch.where(out[:, 0] > 0, 1.0, -1.0).flatten(1)
    for idx in _pixels(radii, 2).T:  # one pixel per image at a time, all images at once
        r = radii.flatten(1).gather(1, idx[:, None])[:, 0]
        s = sign.gather(1, idx[:, None])[:, 0]

        def objective(xa, idx=idx, s=s):
            return -s * model(xa)[:, 0].flatten(1).gather(1, idx[:, None])[:, 0]  # > 0 ⇔ flipped

        assert bool((pgd_l2(objective, x, 0.99 * r.float(), steps=25) < 0).all()), arch


def test_lipresnet_bounds_sample_and_pixel_radii_hold():
    model = trained("lipresnet18_tiny")
    shape = model.config.input_size
    head = linear_head(model, shape)
    assert head.ok and head.upper <= 1 + 1e-4
    x, _, _ = data("shapes", 6, shape[-1], "test")
    low = lower_bounds(model, x, iters=10, steps=3)
    assert low.lower <= head.upper
    with torch.no_grad():
        z = model(x)
    r, pred = head_radii(z, head), z.argmax(1)

    def cls_objective(xa):
        za = model(xa)
        return (za - 1e9 * F.one_hot(pred, za.shape[1])).amax(1) - za.gather(1, pred[:, None])[:, 0]

    assert bool((pgd_l2(cls_objective, x, 0.99 * r.float(), steps=25) < 0).all())

    labels, radii = cam_pixel_radii(model, x)
    for idx in _pixels(radii, 2).T:
        rr = radii.flatten(1).gather(1, idx[:, None])[:, 0]
        lab = labels.flatten(1).gather(1, idx[:, None])[:, 0]

        def pix_objective(xa, idx=idx, lab=lab):
            s = model.mask_logits(xa).flatten(2)
            s = s.gather(2, idx.view(-1, 1, 1).expand(-1, s.shape[1], 1))[..., 0]
            return (s - 1e9 * F.one_hot(lab, s.shape[1])).amax(1) - s.gather(1, lab[:, None])[:, 0]

        assert bool((pgd_l2(pix_objective, x, 0.99 * rr.float(), steps=25) < 0).all())
