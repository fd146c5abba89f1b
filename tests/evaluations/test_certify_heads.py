"""Classifier radii: the head rule applies only to a head whose rows are the classes of one sample;
elsewhere √2·U(A). Certified accuracy never exceeds its optimistic estimate, PGD (ℓ2) at the
certified radius flips no certified sample, and certify exports the model once."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustbench_lip.evaluations.lipschitz.certificate import certify
from robustbench_lip.evaluations.lipschitz.radii import margin_radii
from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.margins import head_radii, linear_head
from tests.helpers.certify_models import PerPositionHead, PlainHead, SampleMixingHead, SharedRowHead

SHAPE = (1, 4, 4)
EPS = (0.01, 0.05, 0.2, 1.0, 5.0, 100.0)


def _data(model: nn.Module, n: int = 24, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)  # labels = predictions: every sample is correct


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(7)
    return {"shared-row": SharedRowHead().eval(), "per-position": PerPositionHead().eval()}


def _pgd_flips(model: nn.Module, x: torch.Tensor, radius: torch.Tensor, steps: int = 60) -> torch.Tensor:
    """Whether ℓ2 PGD within `radius` (per sample) changes each prediction (a margin loss)."""
    pred = model(x).argmax(1)
    delta = torch.zeros_like(x, requires_grad=True)
    r = radius.view(-1, 1, 1, 1).float()
    flipped = torch.zeros(x.shape[0], dtype=torch.bool)
    for _ in range(steps):
        z = model(x + delta)
        flipped |= z.argmax(1) != pred
        top = z.gather(1, pred[:, None])[:, 0]
        other = z.masked_fill(nn.functional.one_hot(pred, z.shape[1]).bool(), -math.inf).amax(1)
        (g,) = torch.autograd.grad((other - top).sum(), delta)
        with torch.no_grad():
            gn = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta += 2.5 * r / steps * g / gn
            dn = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta *= torch.clamp(r / dn.clamp_min(1e-12), max=1.0)
    with torch.no_grad():
        flipped |= model(x + delta).argmax(1) != pred
    return flipped


@pytest.mark.parametrize("name", ["shared-row", "per-position"])
def test_a_head_whose_rows_are_not_the_classes_is_not_recognised(name):
    model = _models()[name]
    head = linear_head(model, SHAPE)
    assert not head.ok and "no linear head recognised" in (head.reason or "")
    x, y = _data(model)
    cert = certify(model, x, y, eps=EPS, steps=1, iters=5)
    assert cert.radius_rules["classifier"].startswith("margin / (√2")
    for e, acc in cert.certified_accuracy.items():
        assert acc <= cert.certified_accuracy_estimate[e] <= cert.clean["accuracy"]
    assert cert.certified_accuracy["100"] == 0.0  # no infinite radius (ε = 100 is written "100")
    # PGD at (just under) each certified radius flips no sample
    radius = margin_radii(model(x).detach(), cert.bound.upper) * 0.999
    assert bool(torch.isfinite(radius).all())
    assert not bool(_pgd_flips(model, x, radius).any())


def test_a_head_with_one_row_per_class_is_recognised_and_its_radii_hold():
    torch.manual_seed(3)
    model = PlainHead().eval()
    x, y = _data(model)
    cert = certify(model, x, y, eps=EPS, steps=1, iters=5)
    assert cert.radius_rules["head"]["structure"] == "linear"
    for e, acc in cert.certified_accuracy.items():
        assert acc <= cert.certified_accuracy_estimate[e] <= cert.clean["accuracy"]
    head = linear_head(model, SHAPE)
    z = model(x).detach()
    radius = torch.maximum(head_radii(z, head), margin_radii(z, cert.bound.upper))
    assert bool((radius > 0).all()) and bool(torch.isfinite(radius).all())
    assert not bool(_pgd_flips(model, x, radius * 0.999).any())


def test_the_head_is_read_on_the_graph_of_the_program_batch():
    """A program exported with a fixed batch of 2: the graph the head rule reads has batch 2."""
    from robustbench_lip.config import ModelConfig
    from robustbench_lip.modelio.foreign import ForeignModel

    torch.manual_seed(4)
    ep = torch.export.export(PlainHead().eval(), (torch.rand(2, *SHAPE),))
    cfg = ModelConfig("pt2", "classification", 1, 3, SHAPE)
    model = ForeignModel(ep.module(), cfg, batch=2)
    x, y = _data(model, n=7)  # 7: not a multiple of the batch
    cert = certify(model, x, y, eps=EPS, steps=1, iters=5)
    assert cert.radius_rules["head"]["structure"] == "linear"
    shared = ForeignModel(
        torch.export.export(SharedRowHead().eval(), (torch.rand(2, *SHAPE),)).module(), cfg, batch=2
    )
    assert not linear_head(shared, SHAPE).ok
    mixing = ForeignModel(
        torch.export.export(SampleMixingHead().eval(), (torch.rand(2, *SHAPE),)).module(), cfg, batch=2
    )
    head = linear_head(mixing, SHAPE)
    assert not head.ok and "mixes samples" in head.reason


def test_certify_exports_and_propagates_once(monkeypatch):
    import robustbench_lip.lipschitz.bounds as bounds

    calls = {"export": 0, "propagate": 0}
    real_export, real_propagate = torch.export.export, bounds.propagate

    def export(*a, **k):
        calls["export"] += 1
        return real_export(*a, **k)

    def propagate(*a, **k):
        calls["propagate"] += 1
        return real_propagate(*a, **k)

    monkeypatch.setattr(torch.export, "export", export)
    monkeypatch.setattr(bounds, "propagate", propagate)
    torch.manual_seed(3)
    model = PlainHead().eval()
    x, y = _data(model)
    cert = certify(model, x, y, eps=EPS, steps=1, iters=3)
    assert cert.radius_rules["head"] is not None  # the head rule ran, on the same graph
    assert calls == {"export": 1, "propagate": 1}
    assert cert.bound.lowered is None  # released after the radii


def test_upper_bound_keeps_its_lowered_graph_until_released():
    ub = upper_bound(PlainHead().eval(), SHAPE)
    assert ub.lowered is not None and ub.lowered.example.shape == (1, *SHAPE)
    assert "lowered" not in ub.to_dict()
    ub.keep_lowered(None)
    assert ub.lowered is None
