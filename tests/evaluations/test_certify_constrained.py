"""certify() on the constrained families: the head rule for classifier radii, certified CAM masks,
the FNE verdict through the whole certificate (and never for an expansive reflection)."""

from __future__ import annotations

import pytest
import torch

from robustbench_lip.evaluations.lipschitz.certificate import certify
from robustbench_lip.evaluations.lipschitz.heads import CAM_RULE, HEAD_RULE, SQRT2_RULE
from robustbench_lip.evaluations.lipschitz.radii import certified_classification
from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.models import create_model
from robustbench_lip.records import CertifyRecord
from tests.helpers.constrained import data, trained
from tests.helpers.rules import Fn

EPS = (36 / 255, 72 / 255, 108 / 255, 1.0)


@pytest.mark.slow  # two exports of the model (bound, head): ≈ 30 s on a quiet 2-core CPU
def test_lipresnet_certificate_uses_the_head_and_certifies_its_masks():
    model = trained("lipresnet18_tiny", steps=6)
    x, y, m = data("shapes", 24, 16, "test")
    cert = certify(model, x, y, m, eps=EPS, iters=3, steps=1)
    p = cert.payload()
    rules = p["radius_rules"]
    assert rules["classifier"] == HEAD_RULE and rules["head"]["structure"] == "conv1x1+mean"
    assert rules["masks"] == CAM_RULE
    assert not any(n.startswith("CAM masks are not certified") for n in p["notes"])
    with torch.no_grad():
        z = model(x)
    sqrt2 = certified_classification(z, y, cert.bound.upper, EPS)  # the √2·U(A) rule alone
    head = p["certified_accuracy"]
    assert all(head[k] >= sqrt2[k] for k in sqrt2)  # the head rule never certifies less
    assert all(head[k] <= p["clean"]["accuracy"] + 1e-9 for k in head)
    pix, miou = p["certified_pixel_accuracy"], p["certified_miou"]
    assert list(pix) == list(head) and list(miou) == list(head)
    values = list(pix.values())
    assert values == sorted(values, reverse=True) and values[0] <= p["clean"]["pixel_accuracy"] + 1e-9
    rec = CertifyRecord(model=model.config.to_dict(), dataset=None, settings={}, **p)
    assert CertifyRecord.from_dict(rec.to_dict()).radius_rules == rules


def test_penalty_mresnet_keeps_uncertified_masks():
    torch.manual_seed(0)
    model = create_model("mresnet18_tiny").eval()
    x, y, m = data("shapes", 4, 16, "test")
    p = certify(model, x, y, m, eps=EPS, iters=2, steps=1).payload()
    assert p["certified_miou"] is None and p["radius_rules"]["masks"] is None
    assert any("CAM masks are not certified" in n for n in p["notes"])
    assert p["radius_rules"]["classifier"] in (HEAD_RULE, SQRT2_RULE)


def test_fne_unet_is_certified_by_certify():
    torch.manual_seed(0)
    model = create_model("unet_fne_tiny").eval()
    x, y, m = data("lesions", 4, 16, "test")
    p = certify(model, x, y, m, eps=EPS, iters=5, steps=1).payload()
    r = p["lipschitz"]["R"]
    assert p["fne"]["verdict"] == "certified"
    assert r["upper"] <= 1.0 and r["lower"] <= r["upper"]
    assert r["upper"] < 2 * p["lipschitz"]["A"]["upper"] + 1 - 0.5  # computed, not the triangle bound
    assert p["radius_rules"]["masks"] is not None and p["certified_miou"] is not None


def test_expansive_reflection_is_not_certified_by_certify():
    """(x + 1.2·N(x))/2, N a 1-Lipschitz U-Net (L(N) up to 1.2 after scaling)."""
    torch.manual_seed(0)
    n = create_model("unet_lip_tiny").eval()
    model = Fn(lambda s, x: (x + 1.2 * n(x)) / 2).eval()
    x = torch.rand(4, *n.config.input_size, generator=torch.Generator().manual_seed(2))
    p = certify(model, x, eps=EPS, iters=10, steps=1).payload()
    r = p["lipschitz"]["R"]
    assert p["fne"]["verdict"] != "certified"
    assert r["upper"] == pytest.approx(1.2 * upper_bound(n, n.config.input_size).upper, rel=1e-6)
    assert r["upper"] > 1 and r["lower"] <= r["upper"]
