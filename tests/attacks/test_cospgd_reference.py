"""SegPGD and CosPGD against the CosPGD authors' package (`pip install cospgd`, `Attack.segpgd_scale`,
`Attack.cospgd_scale`, `Attack.step_inf`, `Attack.step_l2`): per-step losses and whole trajectories.

The package sums SegPGD's weighted CE and divides by H·W (not by the pixel count of the batch), and
leaves the mean of CosPGD's weighted CE to the caller over all pixels; ours divide by the number of
labelled pixels. The factor is constant over the attack, so the sign (ℓ∞) and normalised (ℓ2)
steps — and the trajectories — are the same."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustbench_lip.attacks.segmentation import SegmentationAttack, cospgd_loss, segpgd_loss
from robustbench_lip.models import create_model

cospgd = pytest.importorskip("cospgd")
Ref = cospgd.Attack


def _data(ignore: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 6, 7, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 4, (3, 6, 7), generator=g)
    if ignore:
        target[0, :2] = 255
        target[2, :, :3] = 255
    return logits, target


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("t", [0, 1, 4, 9])
def test_segpgd_loss_matches_package(t: int, ignore: bool) -> None:
    logits, target = _data(ignore)
    steps = 10
    ce = F.cross_entropy(logits, target, reduction="none", ignore_index=255)
    ref = Ref.segpgd_scale(logits, target, ce, t, steps)  # Σ / (H·W)
    n_valid = int((target != 255).sum())
    ours = segpgd_loss(logits, target, 255, t, steps)
    hw = target.shape[-1] * target.shape[-2]
    assert float(ours) == pytest.approx(float(ref) * hw / n_valid, rel=1e-10)


@pytest.mark.parametrize("ignore", [False, True])
def test_cospgd_loss_matches_package(ignore: bool) -> None:
    logits, target = _data(ignore)
    ce = F.cross_entropy(logits, target, reduction="none", ignore_index=255)
    ref = Ref.cospgd_scale(logits, target, ce, num_classes=4)  # per pixel
    n_valid = int((target != 255).sum())
    ours = cospgd_loss(logits, target, 255, 0, 5)
    assert float(ours) == pytest.approx(float(ref.sum()) / n_valid, rel=1e-10)


def _reference_attack(model, x, target, name, eps, alpha, steps, norm, num_classes):
    """The package's loop (as its unet_backbones trainer, without random start)."""
    adv = x.clone()
    for t in range(steps):
        adv.requires_grad_(True)
        out = model(adv)
        ce = F.cross_entropy(out, target, reduction="none", ignore_index=255)
        if name == "segpgd":
            loss = Ref.segpgd_scale(out, target, ce, t, steps)
        else:
            loss = Ref.cospgd_scale(out, target, ce, num_classes=num_classes)
        (grad,) = torch.autograd.grad(loss.mean(), adv)
        step = Ref.step_inf if norm == "linf" else Ref.step_l2
        adv = step(adv, eps, grad, x, alpha, targeted=False)
    return adv.detach()


@pytest.mark.parametrize("name", ["segpgd", "cospgd"])
@pytest.mark.parametrize(("norm", "eps", "alpha"), [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.2)])
def test_trajectory_matches_package(name: str, norm: str, eps: float, alpha: float) -> None:
    torch.manual_seed(0)
    model = create_model("unet_tiny", num_classes=4, num_mask_classes=4).double().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 16, 16, generator=g, dtype=torch.float64)
    with torch.no_grad():
        target = model(x).argmax(1)  # every pixel correct at the start: SegPGD's weights matter
    target[0, :3] = 255
    target[1, 5:9, 5:9] = (target[1, 5:9, 5:9] + 1) % 4  # and some wrong ones
    steps = 4
    ours = SegmentationAttack(model, name, eps, norm, steps, alpha, random_start=False)(x, target)
    ref = _reference_attack(model, x, target, name, eps, alpha, steps, norm, 4)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0)
    assert float((ours - x).abs().max()) > 0
