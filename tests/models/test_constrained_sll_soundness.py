"""Soundness by attack for `sllnet` (dense and CAM heads) after a few training steps: a strong ℓ2 PGD
(10 restarts × 100 steps, in ℝ^d) at 0.99× each certified radius flips no certified sample and no
certified CAM-mask pixel. The radii use L = 1, the constant the layers prove (the largest radii the
construction allows, so the strictest test of it); the certifier's own radii are never larger."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robustbench_lip.evaluations.lipschitz.cam_masks import cam_pixel_radii
from tests.helpers.constrained import data, pgd_l2, trained

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("arch", ["sllnet_tiny", "sllnet_cam_tiny"])
def test_no_certified_sample_flips(arch):
    model = trained(arch, steps=8, lr=0.02)
    x, _, _ = data("shapes", 6, model.config.input_size[-1], "test")
    with torch.no_grad():
        z = model(x)
    pred = z.argmax(1)
    top = z.topk(2, 1).values
    r = (top[:, 0] - top[:, 1]) / math.sqrt(2)  # L = 1
    assert bool((r > 0).all())

    def objective(xa):
        za = model(xa)
        return (za - 1e9 * F.one_hot(pred, za.shape[1])).amax(1) - za.gather(1, pred[:, None])[:, 0]

    worst = pgd_l2(objective, x, 0.99 * r, steps=100, restarts=10)
    assert bool((worst < 0).all())
    # the attack is not toothless: at 1.5× the radius it gets closer to the boundary than at the start
    assert bool((pgd_l2(objective, x, 1.5 * r, steps=100, restarts=2) > objective(x).detach()).all())


def test_no_certified_cam_pixel_flips():
    model = trained("sllnet_cam_tiny", steps=8, lr=0.02)
    x, _, _ = data("shapes", 3, model.config.input_size[-1], "test")
    labels, radii = cam_pixel_radii(model, x, lip_features=1.0)  # U(features) = 1 by construction
    flat = radii.flatten(1).clone()
    flat[~(torch.isfinite(flat) & (flat > 0))] = float("inf")
    for idx in flat.argsort(1)[:, :2].T:  # the two smallest positive radii of each image
        rr = radii.flatten(1).gather(1, idx[:, None])[:, 0]
        lab = labels.flatten(1).gather(1, idx[:, None])[:, 0]

        def objective(xa, idx=idx, lab=lab):
            s = model.mask_logits(xa).flatten(2)
            s = s.gather(2, idx.view(-1, 1, 1).expand(-1, s.shape[1], 1))[..., 0]
            return (s - 1e9 * F.one_hot(lab, s.shape[1])).amax(1) - s.gather(1, lab[:, None])[:, 0]

        assert bool((pgd_l2(objective, x, 0.99 * rr.float(), steps=100, restarts=10) < 0).all())
