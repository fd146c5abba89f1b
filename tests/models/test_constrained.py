"""Certified-by-construction models: registry, save/load, the certifier's bound on them, the FNE
verdict, linear-head radii against a closed form, the margin losses against their definitions.
The attack-based acceptance checks are in test_constrained_soundness.py (slow)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.lipschitz.cam_masks import interpolation_row_norm
from robustbench_lip.evaluations.lipschitz.radii import margin_radii, pixel_radii
from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.lower import lower_bounds
from robustbench_lip.lipschitz.margins import head_radii, linear_head
from robustbench_lip.losses_lip import get_loss, hkr, margin_cross_entropy, multiclass_hinge
from robustbench_lip.modelio import load_model, save_model
from robustbench_lip.models import create_model, list_models
from tests.helpers.constrained import pgd_l2
from tests.helpers.rules import Fn

TINY = ["lipresnet18_tiny", "unet_lip_tiny", "unet_fne_tiny"]


def test_registered_with_the_common_constructor_options():
    names = set(list_models())
    for n in ["lipresnet18", "lipresnet18_w16", "lipresnet18_w8", "unet_lip", "unet_fne", *TINY]:
        assert n in names
    m = create_model(
        "lipresnet18_w8", num_classes=4, image_size=(16, 16), mean=(0.5, 0.5, 0.5), std=(0.2,) * 3
    )
    assert m.config.std == () and m.config.mean == (0.5, 0.5, 0.5)  # std not applied: it would scale L
    with pytest.raises(RlipError, match="fne is fixed"):
        create_model("unet_lip", fne=True)


@pytest.mark.parametrize("arch", TINY)
def test_save_load_round_trip(tmp_path, arch):
    torch.manual_seed(0)
    m = create_model(arch).eval()
    x = torch.rand(2, *m.config.input_size)
    save_model(m, tmp_path / "m")
    back = load_model(tmp_path / "m").eval()
    assert back.config == m.config
    torch.testing.assert_close(back(x), m(x))
    masks = back.predict_mask(x)
    assert masks.shape == (2, *m.config.input_size[1:]) and masks.dtype == torch.int64


def test_fne_unet_is_certified_and_its_reflection_is_computed():
    torch.manual_seed(0)
    m = create_model("unet_fne_tiny").eval()
    ub = upper_bound(m, m.config.input_size)
    assert ub.alpha == pytest.approx(0.5, abs=1e-9)
    assert ub.reflection is not None and ub.reflection <= 1.0  # U(R) = (1 − 1e-3)·U(N) ≤ 1
    assert ub.upper <= 1.0


def test_fne_verdict_never_certifies_an_expansive_reflection():
    """(x + 1.2·N(x))/2 with N a 1-Lipschitz U-Net: U(R) > 1 (no 'certified'), and U(R) ≥ a witness."""
    torch.manual_seed(0)
    n = create_model("unet_lip_tiny").eval()
    model = Fn(lambda s, x: (x + 1.2 * n(x)) / 2).eval()
    shape = n.config.input_size
    ub = upper_bound(model, shape)
    assert ub.reflection is not None and ub.reflection > 1.0
    assert ub.reflection == pytest.approx(1.2 * upper_bound(n, shape).upper, rel=1e-6)
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
    low = lower_bounds(model, x, "reflection", iters=5, steps=1)
    assert low.lower is not None and low.lower <= ub.reflection


class _Linear(nn.Module):
    def __init__(self, d: int, k: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(d, k)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_head_radii_of_a_linear_model_are_the_exact_distance_to_the_boundary():
    model = _Linear(12, 5, 0).eval()
    head = linear_head(model, (3, 2, 2))
    assert head.ok and head.structure == "linear" and head.lip_features == pytest.approx(1.0)
    x = torch.randn(16, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    z = model(x).double()
    w = model.fc.weight.double()
    i = z.argmax(1)
    dist = (z.gather(1, i[:, None]) - z) / torch.cdist(w, w)[i]  # (16, 5), nan on the diagonal
    dist.scatter_(1, i[:, None], math.inf)
    exact, j_star = dist.min(1)
    r = head_radii(model(x), head)
    torch.testing.assert_close(r, exact, rtol=1e-5, atol=1e-6)
    assert bool((r >= margin_radii(model(x), head.upper) * (1 - 1e-6)).all())  # never worse than √2·U(A)
    # tight: moving 1.01·r towards the nearest boundary flips the prediction
    direction = (w[j_star] - w[i]) / (w[j_star] - w[i]).norm(dim=1, keepdim=True)
    moved = x.double().flatten(1) + 1.01 * r[:, None] * direction
    assert bool((model.fc.double()(moved).argmax(1) != i).all())


def test_head_radii_hold_under_attack_for_a_conv_cam_head():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 1))
    cam = Fn(lambda s, x: model(x).mean(dim=(2, 3))).eval()
    head = linear_head(cam, (2, 5, 5))
    assert head.ok and head.structure == "conv1x1+mean"
    x = torch.rand(8, 2, 5, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z = cam(x)
    r, pred = head_radii(z, head), z.argmax(1)

    def objective(xa):
        za = cam(xa)
        return (za - 1e9 * F.one_hot(pred, 4)).amax(1) - za.gather(1, pred[:, None])[:, 0]

    assert bool((pgd_l2(objective, x, 0.99 * r.float()) < 0).all())


def test_head_falls_back_with_a_reason():
    head = linear_head(nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval(), (4,))
    assert not head.ok and "relu" in head.reason and head.upper is not None


def test_pixel_radii_definitions():
    out = torch.tensor([[[[0.5, -0.2], [0.0, 1.0]]]])
    torch.testing.assert_close(pixel_radii(out, 2.0)[1], torch.tensor([[[0.25, 0.1], [0.0, 0.5]]]).double())
    assert interpolation_row_norm((4, 4), (16, 16)) <= 1.0 + 1e-12
    assert interpolation_row_norm((4, 4), (4, 4)) == pytest.approx(1.0)


def test_losses_match_their_definitions():
    z = torch.tensor([[2.0, 1.0, -1.0], [0.0, 0.5, 0.2]])
    y = torch.tensor([0, 2])
    ce = margin_cross_entropy(z, y, offset=0.5, temperature=0.25)
    zz = z - 0.5 * F.one_hot(y, 3)
    assert ce == pytest.approx(float(0.25 * F.cross_entropy(zz / 0.25, y)))
    assert multiclass_hinge(z, y, margin=1.5) == pytest.approx((max(0, 1.5 - 1.0) + (1.5 + 0.3)) / 2)
    kr = ((2 - 0.0) + (0.2 - 0.25)) / 2
    hinge0 = (2 * max(0, 0.5 - 2) + max(0, 0.5 + 1) + max(0, 0.5 - 1)) / 3
    hinge1 = (max(0, 0.5 + 0) + max(0, 0.5 + 0.5) + 2 * max(0, 0.5 - 0.2)) / 3
    assert hkr(z, y, alpha=0.5, margin=1.0) == pytest.approx(0.5 * (hinge0 + hinge1) / 2 - 0.5 * kr)
    seg = torch.randn(2, 3, 4, 4)
    assert get_loss("margin_ce", offset=1, temperature=0.5)(seg, seg.argmax(1)) > 0
    with pytest.raises(RlipError, match="unknown option"):
        get_loss("hinge", offset=1)
    with pytest.raises(RlipError, match="unknown loss"):
        get_loss("nope")
