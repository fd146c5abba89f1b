"""APGD for segmentation: ε-ball and [0, 1], losses against direct formulas, an exact per-pixel
oracle, strength against pixel PGD on models trained on the built-in data, per-attack RNG streams,
and isolation of model modes and global RNG."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.attacks.apgd_seg import (
    APGDSegmentation,
    class_logits,
    labelled,
    pixel_losses,
    pixel_weights,
)
from robustbench_lip.attacks.rng import stream_generator, stream_seed
from robustbench_lip.attacks.sea import SEA
from robustbench_lip.attacks.segmentation import SegmentationAttack
from robustbench_lip.errors import RlipError
from robustbench_lip.metrics import per_sample_accuracy
from robustbench_lip.models import create_model
from tests.helpers.seg_models import check_isolation, lesions_unet, pixel_miou, shapes_cam, tiny_segmenter

TOL = 1e-6
MODELS = {"lesions": lesions_unet, "shapes_cam": shapes_cam}


# ----------------------------------------------------------------------------- streams
def test_stream_seed_is_stable_and_distinct() -> None:
    assert stream_seed(0, "pgd") == stream_seed(0, "pgd")
    assert stream_seed(0, "pgd") == 8609528140444862628  # sha256-derived: the same on every machine
    seeds = {stream_seed(s, *n) for s in (0, 1) for n in (("pgd",), ("segpgd",), ("a", "bc"), ("ab", "c"))}
    assert len(seeds) == 8
    assert all(0 <= s < 2**63 for s in seeds)
    before = torch.get_rng_state()
    a, b = stream_generator(3, "x"), stream_generator(3, "x")
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    assert torch.equal(before, torch.get_rng_state())


# ----------------------------------------------------------------------------- losses
def _logits_target() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    target[0, :2] = 255
    return logits.requires_grad_(True), target


def _losses(name: str, logits: torch.Tensor, target: torch.Tensor, class_weights=None):
    tgt, valid = labelled(target, 255)
    w = pixel_weights(name, tgt, valid, 4, class_weights).to(logits.dtype)
    correct = (logits.argmax(1) == tgt) & valid
    return pixel_losses(name, logits, tgt, w, correct), tgt, valid, correct


def test_js_is_the_jensen_shannon_divergence() -> None:
    logits, target = _logits_target()
    (att, track), tgt, valid, _ = _losses("js", logits, target)
    p = logits.softmax(1)
    q = F.one_hot(tgt, 4).permute(0, 3, 1, 2).double()
    m = (p + q) / 2
    kl = lambda a, b: (torch.special.xlogy(a, a) - torch.special.xlogy(a, b)).sum(1)  # noqa: E731
    ref = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    assert torch.allclose(att[valid], ref[valid], atol=1e-12)
    assert torch.allclose(track[valid], F.cross_entropy(logits, tgt, reduction="none")[valid])
    assert float(att.detach().max()) <= np.log(2) + 1e-12


def test_masked_losses_count_only_correct_pixels() -> None:
    logits, target = _logits_target()
    (att, _), tgt, _, correct = _losses("mask-sph", logits, target)
    for i, r, c in itertools.product(range(2), range(5), range(6)):
        z = logits[i, :, r, c]
        ref = -z[tgt[i, r, c]] / z.norm() if correct[i, r, c] else torch.tensor(0.0)
        assert float(att[i, r, c].detach()) == pytest.approx(float(ref.detach()), abs=1e-12)
    (att, _), _, _, correct = _losses("mask-ce", logits, target)
    ce = F.cross_entropy(logits, tgt, reduction="none")
    assert torch.equal(att == 0, ~correct | (ce == 0))
    assert torch.allclose(att[correct], ce[correct])


def test_balanced_weights() -> None:
    _, target = _logits_target()
    tgt, valid = labelled(target, 255)
    w = pixel_weights("mask-ce-bal", tgt, valid, 4, None).double()
    for i in range(2):
        classes = tgt[i][valid[i]].unique()
        n = int(valid[i].sum())
        for c in classes:  # every class present carries the same total weight n / C
            sel = valid[i] & (tgt[i] == c)
            assert float(w[i][sel].sum()) == pytest.approx(n / len(classes))
        assert float(w[i][valid[i]].mean()) == pytest.approx(1.0)
    assert float(w[~valid].abs().sum()) == 0
    cw = torch.tensor([0.1, 0.2, 0.3, 0.4])
    w2 = pixel_weights("mask-ce-bal", tgt, valid, 4, cw)
    assert torch.allclose(w2[valid], cw[tgt[valid]])
    with pytest.raises(RlipError, match="class_weights"):
        pixel_weights("mask-ce-bal", tgt, valid, 4, torch.ones(3))


@pytest.mark.parametrize("name", ["ce", "mask-ce", "mask-ce-bal", "js", "mask-sph"])
def test_ignored_pixels_get_no_gradient(name: str) -> None:
    logits, target = _logits_target()
    (att, _), _, valid, _ = _losses(name, logits, target)
    (g,) = torch.autograd.grad(att.sum(), logits)
    assert float(g.permute(0, 2, 3, 1)[~valid].abs().sum()) == 0
    assert float(g.abs().sum()) > 0


def test_binary_map_becomes_two_class_logits() -> None:
    z = torch.randn(2, 1, 3, 3)
    out = class_logits(z)
    assert out.shape == (2, 2, 3, 3)
    assert torch.equal(out.argmax(1), (z[:, 0] > 0).long())
    with pytest.raises(RlipError, match="shape"):
        class_logits(torch.randn(2, 3))


# ----------------------------------------------------------------------------- budgets
def _attacks(model, eps, norm, steps=4):
    return [
        APGDSegmentation(model, "mask-ce", eps, norm, steps),
        APGDSegmentation(model, "js", eps, norm, steps, shrink_eps=False),
        SEA(model, eps, norm, steps, losses=("mask-ce-bal", "mask-sph"), extra=("pgd",)),
    ]


@pytest.mark.parametrize(("norm", "eps"), [("linf", 2 / 255), ("linf", 16 / 255), ("l2", 0.1), ("l2", 2.0)])
def test_within_budget_and_unit_box(norm: str, eps: float) -> None:
    model, x, m = tiny_segmenter()
    for atk in _attacks(model, eps, norm):
        adv = atk(x, m)
        assert adv.shape == x.shape and adv.dtype == x.dtype
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        d = (adv - x).flatten(1)
        size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
        assert float(size.max()) <= eps + TOL, repr(atk)


def test_zero_budget_is_identity_without_the_model() -> None:
    model, x, m = tiny_segmenter()

    def boom(_x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model must not be called at ε = 0")

    for atk in (APGDSegmentation(model, eps=0.0, logits_fn=boom), SEA(model, 0.0, logits_fn=boom)):
        assert torch.equal(atk(x, m), x)


def test_bad_requests() -> None:
    model = tiny_segmenter()[0]
    with pytest.raises(RlipError, match="APGD loss"):
        APGDSegmentation(model, "dlr")
    with pytest.raises(RlipError, match="steps"):
        APGDSegmentation(model, steps=0)
    with pytest.raises(RlipError, match="eps"):
        APGDSegmentation(model, eps=2.0)
    with pytest.raises(RlipError, match="segment"):
        APGDSegmentation(create_model("unet_i2i_tiny", in_channels=3))


# ----------------------------------------------------------------------------- strength
class PixelLinear(nn.Module):
    """z = w·x + b at every pixel (a 1×1 convolution): a binary map (N, 1, H, W), mask z > 0.
    Pixels are independent, so the lowest reachable pixel accuracy is known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1))
            self.conv.bias.fill_(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("eps", [2 / 255, 8 / 255])
def test_apgd_reaches_the_exact_pixelwise_optimum(eps: float) -> None:
    model = PixelLinear().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 12, 12, generator=g)
    with torch.no_grad():
        z = model(x)[:, 0]
    y = (z > 0).long()
    w, b = model.conv.weight.detach().view(1, 3, 1, 1), float(model.conv.bias.detach())
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    zmin = b + torch.minimum(w * lo, w * hi).sum(1)
    zmax = b + torch.maximum(w * lo, w * hi).sum(1)
    flippable = torch.where(y == 1, zmin <= 0, zmax > 0)
    assert 0 < int(flippable.sum()) < flippable.numel()  # a test that can fail both ways
    assert float(torch.cat([zmin[y == 1], zmax[y == 0]]).abs().min()) > 1e-4  # no near-ties
    truth = 1 - flippable.double().flatten(1).mean(1)
    for atk in (
        APGDSegmentation(model, "ce", eps, "linf", 10, logits_fn=model),
        APGDSegmentation(model, "mask-ce", eps, "linf", 10, logits_fn=model),
        SegmentationAttack(model, "pgd", eps, "linf", 10, logits_fn=lambda v: class_logits(model(v))),
    ):
        adv = atk(x, y)
        with torch.no_grad():
            pred = (model(adv)[:, 0] > 0).long()
        assert torch.equal(pred != y, flippable), repr(atk)
        assert torch.allclose(per_sample_accuracy(pred, y), truth)


@pytest.mark.parametrize("model_name", ["lesions", "shapes_cam"])
@pytest.mark.parametrize(("norm", "eps"), [("linf", 16 / 255), ("linf", 32 / 255), ("l2", 0.5)])
def test_apgd_at_least_as_strong_as_pgd(model_name: str, norm: str, eps: float) -> None:
    """Same loss (pixel CE), budget and steps: APGD's mIoU is at or below PGD's, for two seeds."""
    model, x, m = MODELS[model_name]()
    pgd = pixel_miou(model, SegmentationAttack(model, "pgd", eps, norm, 10, seed=0)(x, m), m)
    for seed in (0, 1):
        apgd = pixel_miou(model, APGDSegmentation(model, "ce", eps, norm, 10, seed=seed)(x, m), m)
        assert apgd <= pgd, (model_name, eps, seed, apgd, pgd)
        assert apgd < pixel_miou(model, x, m)  # the attack does something


# ----------------------------------------------------------------------------- determinism, streams
def test_deterministic_and_independent_of_other_attacks() -> None:
    model, x, m = lesions_unet()
    eps = 8 / 255
    first = APGDSegmentation(model, "mask-ce", eps, "linf", 5, seed=7)(x, m)
    SegmentationAttack(model, "segpgd", eps, "linf", 3, seed=stream_seed(7, "segpgd"))(x, m)
    APGDSegmentation(model, "js", eps, "linf", 3, seed=7)(x, m)
    torch.manual_seed(123)  # the global RNG plays no part
    again = APGDSegmentation(model, "mask-ce", eps, "linf", 5, seed=7)(x, m)
    assert torch.equal(first, again)
    other = APGDSegmentation(model, "mask-ce", eps, "linf", 5, seed=8)(x, m)
    assert not torch.equal(first, other)
    # binary logits (N, 1, H, W) straight from the i2i U-Net give the same attack as mask_logits
    raw = APGDSegmentation(model, "mask-ce", eps, "linf", 5, seed=7, logits_fn=model)(x, m)
    assert torch.allclose(raw, first, atol=1e-6)


@pytest.mark.parametrize("fail", [False, True])
def test_modes_and_rng_restored(fail: bool) -> None:
    check_isolation(lambda model: APGDSegmentation(model, "js", 8 / 255, steps=4), fail)
