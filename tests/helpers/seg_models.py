"""Shared pieces of tests/attacks/test_apgd_seg.py and test_sea.py: small models trained once per
session on the built-in data, a tiny segmenter, a flaky model, metric shortcuts."""

from __future__ import annotations

import functools
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.attacks.apgd_seg import class_logits
from robustbench_lip.data import get_dataset
from robustbench_lip.metrics import ConfusionMatrix, per_sample_accuracy
from robustbench_lip.models import create_model, create_model_for, mask_logits


@functools.cache
def trained(arch: str, dataset: str, pixel: bool, fg_weight: float | None = None, steps: int = 100):
    """`arch` trained `steps` Adam steps on the built-in `dataset` (16×16); returns (model, x, masks)
    of 24 test images. Cached: callers must not change the model or the tensors."""
    tr = get_dataset(dataset, "train", n_train=512, image_size=16)
    te = get_dataset(dataset, "test", n_test=24, image_size=16)
    torch.manual_seed(0)
    model = create_model_for(arch, tr.info)
    x, y, m = tr.tensors()
    w = None if fg_weight is None else torch.tensor([1.0, fg_weight])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        opt.zero_grad()
        out = mask_logits(model, x[idx]) if pixel else model(x[idx])
        F.cross_entropy(out, m[idx] if pixel else y[idx], weight=w).backward()
        opt.step()
    xt, _, mt = te.tensors()
    return model.eval(), xt, mt


def lesions_unet():
    """Image-to-image U-Net (binary z > 0) on `lesions`, lesion pixels weighted 10× in training."""
    return trained("unet_i2i_tiny", "lesions", True, 10.0)


def shapes_cam():
    """mResNet-18 (tiny) classifier on `shapes`, attacked on its CAM masks."""
    return trained("mresnet18_tiny", "shapes", False)


def tiny_segmenter() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An untrained 4-class U-Net, 6 images (two at the corners of the box), masks with ignored pixels."""
    torch.manual_seed(0)
    model = create_model("unet_tiny", num_classes=4, num_mask_classes=4).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16, generator=g)
    x[0], x[1] = 0.0, 1.0
    m = torch.randint(0, 4, (6, 16, 16), generator=g)
    m[2, :4] = 255
    return model, x, m


def pixel_miou(model: nn.Module, x: torch.Tensor, masks: torch.Tensor) -> float:
    with torch.no_grad():
        logits = mask_logits(model, x)
    return ConfusionMatrix(int(logits.shape[1]), 255).update(logits.argmax(1), masks).miou()


def pixel_accuracy(model: nn.Module, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-image pixel accuracy (N,)."""
    with torch.no_grad():
        pred = class_logits(mask_logits(model, x)).argmax(1)
    return per_sample_accuracy(pred, masks, 255)


class Flaky(nn.Module):
    """conv → BN → conv pixel logits; raises on the `fail_at`-th forward call."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 1)
        )
        self.fail_at, self.calls = fail_at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("boom")
        return self.body(x)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


def check_isolation(make_attack, fail: bool) -> None:
    """Run `make_attack(model)(x, m)` on a training Flaky model with a frozen BatchNorm (failing on its
    4th forward when `fail`): afterwards every `training` flag and the global RNG states are as before."""
    torch.manual_seed(0)
    model = Flaky(fail_at=4 if fail else 10**9)
    model.train()
    model.body[1].eval()
    modes = [mod.training for mod in model.modules()]
    x = torch.rand(2, 3, 8, 8)
    m = torch.randint(0, 3, (2, 8, 8))
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    atk = make_attack(model)
    if fail:
        try:
            atk(x, m)
        except RuntimeError as e:
            assert "boom" in str(e)
        else:
            raise AssertionError("the model's error must propagate")
    else:
        atk(x, m)
    assert [mod.training for mod in model.modules()] == modes
    assert before[0] == random.getstate()
    assert np.array_equal(before[1], np.random.get_state()[1])
    assert torch.equal(before[2], torch.get_rng_state())
