"""The FNE U-Net's training objective (zoo/lesions_fne_cpu.toml): the `hinge` loss on the mask logits
[0, T·A] is the per-pixel hinge max(0, m − s_p·T·A(x)_p) (s_p = +1 on the mask, −1 off it), whose zero
set is exactly |A(x)_p| ≥ m / T on the correct side — a certified pixel radius ≥ m / (T·U(A))."""

from __future__ import annotations

import torch

from robustbench_lip.config import SweepSpec
from robustbench_lip.models import create_model
from robustbench_lip.training.losses import config_loss, soft_dice_loss, task_loss
from tests.helpers.constrained import data
from tests.helpers.paths import ZOO


def test_hinge_on_mask_logits_is_the_per_pixel_margin_hinge():
    spec = SweepSpec.from_toml(ZOO / "lesions_fne_cpu.toml")
    cfg = spec.config("unet_fne", 0.0, 0)
    assert cfg.loss == "hinge" and cfg.dice
    t, m = cfg.logit_scale, cfg.loss_margin
    assert m / t > 36 / 255  # the margin is beyond the target radius (U(A) ≤ 1)
    torch.manual_seed(3)
    model = create_model("unet_fne_tiny")
    x, _, masks = data("lesions", 4, 16)
    got = task_loss(model, x, None, masks, cfg.dice, cfg.logit_scale, config_loss(cfg))
    a = model(x)[:, 0]
    s = masks.float() * 2 - 1
    z = torch.stack([torch.zeros_like(a), a], 1) * t
    want = torch.relu(m - s * t * a).mean() + soft_dice_loss(z, masks)
    torch.testing.assert_close(got, want)
