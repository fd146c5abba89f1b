"""certify(): lower estimates vs exact constants, lower ≤ upper, FNE witnesses, certified metrics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.lipschitz.certificate import certify, fne_test, lower_bounds
from robustbench_lip.evaluations.lipschitz.radii import certified_classification, certified_segmentation
from robustbench_lip.lipschitz.bounds import upper_bound
from tests.helpers.oracle import dense_norm


class LinearNet(nn.Module):
    """Activation-free: conv stack with a residual and a concat, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, padding=1)
        self.c2 = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(6 * 16, 4)

    def forward(self, x):
        z = self.c1(x)
        z = z + self.c2(z)
        return self.fc(torch.cat([z, -2 * z], dim=1).flatten(1))


def test_linear_network_lower_matches_exact_and_upper_is_above():
    torch.manual_seed(1)
    net = LinearNet().double().eval()
    exact = dense_norm(net, (2, 4, 4))
    x = torch.rand(4, 2, 4, 4, dtype=torch.float64)
    lb = lower_bounds(net, x, iters=60, steps=2)
    assert abs(lb.lower - exact) <= 1e-3 * exact
    assert lb.lower <= exact * (1 + 1e-6)
    ub = upper_bound(net, (2, 4, 4), mode="tight")
    assert ub.upper >= exact


def _random_net(seed: int, act: str, width: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    acts = {
        "relu": nn.ReLU(),
        "tanh": nn.Tanh(),
        "gelu": nn.GELU(),
        "silu": nn.SiLU(),
        "lrelu": nn.LeakyReLU(0.2),
    }
    net = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        acts[act],
        nn.Conv2d(width, width, 3, stride=2, padding=1),
        nn.BatchNorm2d(width),
        acts[act],
        nn.Flatten(),
        nn.Linear(width * 9, 3),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
        net[3].running_var.copy_(torch.rand(width, generator=g) + 0.3)
    return net.eval()


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    act=st.sampled_from(["relu", "tanh", "gelu", "silu", "lrelu"]),
    width=st.integers(1, 4),
)
def test_every_lower_estimate_is_below_the_upper_bound(seed, act, width):
    net = _random_net(seed, act, width)
    x = torch.rand(6, 1, 5, 5, generator=torch.Generator().manual_seed(seed))
    ub = upper_bound(net, (1, 5, 5))
    lb = lower_bounds(net, x, iters=20, steps=3)
    assert ub.upper is not None
    for v in (lb.lower, *lb.sources.values()):
        assert v is None or v <= ub.upper  # witnessed in float64: no rounding slack needed


class Expansive(nn.Module):
    """A(x) = 1.5 x: not firmly non-expansive (⟨Ax−Ay, x−y⟩ − ‖Ax−Ay‖² = −0.75‖x−y‖²)."""

    def forward(self, x):
        return 1.5 * x


class Halving(nn.Module):
    """A(x) = x/2: firmly non-expansive (value +0.25‖x−y‖²)."""

    def forward(self, x):
        return 0.5 * torch.relu(x)


def test_fne_witness_for_non_fne_map_and_none_for_fne_map():
    x = torch.rand(5, 1, 3, 3)
    r = fne_test(Expansive(), x, steps=2)
    assert r["violated"] is True and r["verdict"] == "violated"
    w = r["witness"]
    i, j = w["indices"]
    assert i != j and w["value"] < 0 and w["normalised"] == pytest.approx(-0.75, rel=1e-3)
    r = fne_test(Halving(), x, steps=2)
    assert r["violated"] is False and r["witness"] is None and r["min_value"] >= 0


def test_certified_classification_by_hand():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.9], [1.0, 0.0, 5.0]])
    labels = torch.tensor([0, 1, 0])
    # radii margin/(√2 L) with L = 1: 2/√2 = 1.414, 0.1/√2 = 0.0707, wrong → never
    r = certified_classification(logits, labels, 1.0, [0.0, 0.05, 0.1, 2.0])
    assert r == {
        "0": pytest.approx(2 / 3),
        "0.05": pytest.approx(2 / 3),
        "0.1": pytest.approx(1 / 3),
        format_eps(2.0): 0.0,
    }
    assert certified_classification(logits, labels, None, [0.1]) is None


def test_certified_segmentation_binary_and_multiclass():
    z = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])  # binary logit, L = 1: radii |z|
    masks = torch.tensor([[[1, 0], [0, 0]]])
    miou, pix = certified_segmentation(z, masks, 1.0, [0.0, 1.5], 2)
    # ε=0: pred [[1,0],[1,0]]: pixel acc 3/4; IoU bg 2/3, fg 1/2
    assert pix["0"] == pytest.approx(0.75) and miou["0"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # ε=1.5: certified pixels (0,0) fg and (1,1) bg only
    key = format_eps(1.5)
    assert pix[key] == pytest.approx(0.5) and miou[key] == pytest.approx((1 / 3 + 1) / 2)
    logits = torch.randn(2, 3, 4, 4)
    masks = logits.argmax(1)
    miou, pix = certified_segmentation(logits, masks, 1e-9, [0.1], 3)
    assert pix["0.1"] == 1.0 and miou["0.1"] == 1.0
    miou, pix = certified_segmentation(logits, masks, 1e9, [0.1], 3)
    assert pix["0.1"] == 0.0 and miou["0.1"] == 0.0


def test_certify_classifier_payload_and_rng_untouched():
    net = _random_net(3, "relu", 2)
    x = torch.rand(8, 1, 5, 5)
    y = torch.randint(0, 3, (8,))
    state = torch.get_rng_state()
    cert = certify(net, x, y, eps=[0.0, 0.1], steps=2, iters=10)
    assert torch.equal(state, torch.get_rng_state())
    p = cert.payload(layers=True)
    a = p["lipschitz"]["A"]
    assert a["upper"] >= a["lower"] > 0 and a["gap"] == pytest.approx(a["upper"] / a["lower"])
    assert p["lipschitz"]["R"] is None and p["fne"]["violated"] is None
    ca, est = p["certified_accuracy"], p["certified_accuracy_estimate"]
    assert set(ca) == {"0", "0.1"} and ca["0.1"] <= est["0.1"] <= p["clean"]["accuracy"]
    assert ca["0"] == pytest.approx(p["clean"]["accuracy"])
    assert p["unsupported_ops"] == [] and p["layers"]


def test_certify_image_to_image_reflection_and_random_inputs():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1)).eval()
    with pytest.raises(RlipError):
        certify(
            nn.Sequential(nn.Conv2d(1, 2, 3, padding=1)).eval(), input_shape=(1, 4, 4), target="reflection"
        )
    cert = certify(net, input_shape=(1, 6, 6), n_random=4, steps=2, iters=10)
    p = cert.payload()
    r = p["lipschitz"]["R"]
    assert r["upper_kind"] == "certified" and r["upper"] <= 2 * p["lipschitz"]["A"]["upper"] + 1 + 1e-9
    assert r["lower"] <= r["upper"]
    assert p["fne"]["violated"] in (True, False)
    assert p["certified_accuracy"] is None and p["certified_miou"] is None
    with pytest.raises(RlipError):
        certify(net)  # no data, no config, no shape


def test_certify_unknown_operator_gives_null_upper():
    class Sq(nn.Module):
        def forward(self, x):
            return (x * x).flatten(1)[:, :3]

    cert = certify(Sq(), input_shape=(1, 3, 3), n_random=3, steps=1, iters=5)
    p = cert.payload()
    assert p["lipschitz"]["A"]["upper"] is None and p["lipschitz"]["A"]["gap"] is None
    assert p["unsupported_ops"] and math.isfinite(p["lipschitz"]["A"]["lower"])
