"""Randomized smoothing (Cohen et al. 2019; SegCertify, Fischer et al. 2021) against closed forms.

Truths used: a two-class linear classifier's smoothed classifier is itself and its exact certified
radius is the distance to the decision boundary, |w·x + b| / ‖w‖, with p_A = Φ(distance/σ); a
per-pixel threshold model (label 1 where x_i > c_i) has per-pixel p_i = Φ(−c_i/σ) at x = 0 and exact
per-pixel radius |c_i|; scipy's exact binomial confidence interval.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from robustbench_lip.data import RlipDataset, dataset_info
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.smoothing.classification import smoothed_certify, smoothed_predict
from robustbench_lip.evaluations.smoothing.segmentation import (
    ABSTAIN,
    pixel_certify,
    segment_votes,
    smoothed_segment_certify,
)
from robustbench_lip.evaluations.smoothing.statistics import bonferroni, cp_lower, holm
from robustbench_lip.evaluations.smoothing.summary import certify_smoothed, radius_key
from robustbench_lip.models import create_model_for

SIGMA = 0.25
SHAPE = (1, 4, 4)


def _linear(seed: int = 0) -> tuple[nn.Module, torch.Tensor, float]:
    """Two-class linear classifier on 1×4×4 images; returns (model, w, b) of the score w·x + b."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(16, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 16, generator=g))
        lin.bias.copy_(torch.randn(2, generator=g))
    w = (lin.weight[1] - lin.weight[0]).detach()
    b = float((lin.bias[1] - lin.bias[0]).detach())
    return nn.Sequential(nn.Flatten(), lin).eval(), w, b


def _points_at(w: torch.Tensor, b: float, dist: torch.Tensor, seed: int) -> torch.Tensor:
    """Images (N, 1, 4, 4) whose signed score distance (w·x + b)/‖w‖ equals `dist`."""
    g = torch.Generator().manual_seed(seed)
    dist = dist.to(w.dtype)
    base = torch.rand(len(dist), 16, generator=g)
    u = w / w.norm()
    on_boundary = base - ((base @ w + b) / w.norm()).unsqueeze(1) * u
    return (on_boundary + dist.unsqueeze(1) * u).view(-1, *SHAPE)


def _exact(w: torch.Tensor, b: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    score = x.flatten(1) @ w + b
    return (score > 0).long(), score.abs() / w.norm()


# ---------------------------------------------------------------- statistics


def test_clopper_pearson_matches_scipy_exact_interval() -> None:
    for n in (10, 100, 1000):
        for k in (0, 1, n // 3, n // 2, n - 1, n):
            for alpha in (0.001, 0.05, 0.2):
                ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
                assert float(cp_lower(k, n, alpha)) == pytest.approx(ci.low, abs=1e-12)
    assert float(cp_lower(50, 50, 0.01)) == pytest.approx(0.01 ** (1 / 50), rel=1e-12)


def test_holm_rejects_a_superset_of_bonferroni_and_is_step_down() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.02, size=rng.integers(1, 30)) ** rng.uniform(0.5, 2)
        h, bo = holm(p, 0.05), bonferroni(p, 0.05)
        assert np.all(h[bo])
        ps = np.sort(p)
        expected = 0
        while expected < len(ps) and ps[expected] <= 0.05 / (len(ps) - expected):
            expected += 1
        assert h.sum() == expected
    assert holm(np.array([0.01, 0.02, 0.04]), 0.05).all()  # 0.01 ≤ .05/3, 0.02 ≤ .05/2, 0.04 ≤ .05
    assert bonferroni(np.array([0.01, 0.02, 0.04]), 0.05).tolist() == [True, False, False]


# ---------------------------------------------------------------- classification


def test_linear_radii_sound_and_tight() -> None:
    """n = 10⁴: no certified radius above the exact one; within 10 % of it for p_A ∈ [0.85, 0.995]."""
    rows = []
    for seed in range(3):
        model, w, b = _linear(seed)
        p_a = torch.tensor(np.linspace(0.55, 0.9995, 24))
        sign = torch.tensor([1.0, -1.0]).repeat(12)
        dist = sign * SIGMA * torch.from_numpy(stats.norm.ppf(p_a.numpy()))
        x = _points_at(w, b, dist, seed)
        label, exact = _exact(w, b, x)
        res = smoothed_certify(model, x, sigma=SIGMA, n0=100, n=10_000, batch_size=20_000, seed=seed)
        rows += [(r, int(y), float(e), float(p)) for r, y, e, p in zip(res, label, exact, p_a, strict=True)]
    for r, y, e, p in rows:
        if p >= 0.6:
            assert r.label is not None, "n = 10⁴ must certify p_A ≥ 0.6"
        if r.label is not None:
            assert r.label == y
            assert r.radius <= e + 1e-9, (r, e, p)
        if 0.85 <= p <= 0.995:
            assert r.radius >= 0.9 * e, (r.radius, e, p)
    assert sum(r.label is not None for r, *_ in rows) >= 0.9 * len(rows)


def test_constant_model_closed_form() -> None:
    """Every sample votes class 2: p_lower = alpha^(1/n), radius = σ·Φ⁻¹(alpha^(1/n))."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    (r,) = smoothed_certify(model, torch.rand(*SHAPE), sigma=0.5, n0=10, n=200, alpha=0.01)
    assert r.label == 2 and r.count == 200
    assert r.p_lower == pytest.approx(0.01 ** (1 / 200), rel=1e-12)
    assert r.radius == pytest.approx(0.5 * stats.norm.ppf(0.01 ** (1 / 200)), rel=1e-12)
    (p,) = smoothed_predict(model, torch.rand(*SHAPE), sigma=0.5, n=20)
    assert p.label == 2 and p.pvalue == pytest.approx(2 * 0.5**20)


def _tie_model(classes: tuple[int, int], k: int) -> nn.Module:
    """Logits whose argmax is classes[1] where x_0 > 0, else classes[0]: a fair coin at x = 0."""
    lin = nn.Linear(16, k)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.fill_(-10.0)
        lin.bias[list(classes)] = 0.0
        lin.weight[classes[1], 0] = 1.0
        lin.weight[classes[0], 0] = -1.0
    return nn.Sequential(nn.Flatten(), lin).eval()


@pytest.mark.parametrize(("classes", "k"), [((0, 1), 2), ((0, 2), 3)])
def test_equally_likely_classes_abstain(classes: tuple[int, int], k: int) -> None:
    model = _tie_model(classes, k)
    x = torch.zeros(20, *SHAPE)
    cert = smoothed_certify(model, x, sigma=SIGMA, n0=50, n=2000, batch_size=10_000)
    pred = smoothed_predict(model, x, sigma=SIGMA, n=2000, batch_size=10_000)
    assert all(r.label is None and r.radius is None for r in cert)
    assert all(p.label is None for p in pred)
    assert all(r.p_lower is not None and r.p_lower <= 0.5 for r in cert)
    # the same model away from the tie certifies (the test can fail)
    (far,) = smoothed_certify(model, torch.full(SHAPE, 1.0), sigma=SIGMA, n0=50, n=2000)
    assert far.label == classes[1]


def test_alpha_respected_empirically() -> None:
    """alpha = 0.2, 400 independent runs at p_A = 0.8: wrong certificates (radius above the exact one or
    a wrong class) at most alpha·runs + 3 binomial standard deviations (a point estimate of p_A in place
    of the lower bound is wrong about half the time)."""
    model, w, b = _linear(7)
    runs, alpha = 400, 0.2
    d = SIGMA * stats.norm.ppf(0.8)
    x = _points_at(w, b, torch.tensor([d]), 0).expand(runs, *SHAPE)
    label, exact = _exact(w, b, x)
    res = smoothed_certify(model, x, sigma=SIGMA, n0=10, n=50, alpha=alpha, batch_size=20_000, seed=3)
    wrong = sum(
        r.label is not None and (r.label != y or r.radius > e)
        for r, y, e in zip(res, label, exact, strict=True)
    )
    assert wrong <= alpha * runs + 3 * math.sqrt(runs * alpha * (1 - alpha))
    assert sum(r.label is not None for r in res) > runs / 2  # it does certify


# ---------------------------------------------------------------- segmentation


class _PixelThreshold(nn.Module):
    """(B, 1, H, W) → x − c: label 1 where x_i > c_i (threshold rule)."""

    def __init__(self, c: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("c", c.view(1, 1, *c.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.c


def _pixel_model(p_one: torch.Tensor) -> _PixelThreshold:
    """At x = 0, pixel i is labelled 1 with probability p_one[i] (exactly)."""
    return _PixelThreshold(-SIGMA * torch.from_numpy(stats.norm.ppf(p_one.double().numpy())).float())


def test_segment_votes_match_known_pixel_probabilities() -> None:
    p = torch.linspace(0.05, 0.95, 64).view(8, 8)
    p[0, 0] = 0.5
    model = _pixel_model(p)
    top, count, k = segment_votes(model, torch.zeros(1, 8, 8), sigma=SIGMA, n0=400, n=4000, batch_size=1000)
    assert k == 2 and top.shape == count.shape == (1, 8, 8)
    p_top = torch.where(p > 0.5, p, 1 - p).double()
    sure = (p - 0.5).abs() > 0.1
    assert torch.equal(top[0][sure], (p > 0.5).long()[sure])
    freq = count[0].double() / 4000
    sd = (p_top * (1 - p_top) / 4000).sqrt()
    assert ((freq - p_top).abs()[sure] <= 5 * sd[sure]).all()


def test_segcertify_controls_per_image_error_and_holm_dominates() -> None:
    """32 strong (p = 0.99), 16 moderate (p = 0.87) and 16 null pixels (p = tau = 0.75) at alpha = 0.2:
    over 200 images, images with any falsely certified pixel ≤ alpha·runs + 3 sd for Holm and for
    Bonferroni (uncorrected tests would fail almost every image); Holm certifies a superset of
    Bonferroni's pixels, strictly more in total."""
    tau, alpha, runs, n = 0.75, 0.2, 200, 100
    p = torch.cat([torch.full((32,), 0.99), torch.full((16,), 0.87), torch.full((16,), tau)]).view(8, 8)
    model = _pixel_model(p)
    top, count, _ = segment_votes(
        model, torch.zeros(runs, 1, 8, 8), sigma=SIGMA, n0=10, n=n, batch_size=4000, seed=11
    )
    null = p <= tau
    errors = {"holm": 0, "bonferroni": 0}
    total = {"holm": 0, "bonferroni": 0}
    for t, c in zip(top, count, strict=True):
        preds = {k: pixel_certify(t, c, n, alpha=alpha, tau=tau, correction=k) for k in errors}
        for k, pr in preds.items():
            certified = pr != ABSTAIN
            errors[k] += int(bool((certified & (null | (pr != 1))).any()))
            total[k] += int(certified.sum())
        assert bool(((preds["bonferroni"] != ABSTAIN) <= (preds["holm"] != ABSTAIN)).all())
    bound = alpha * runs + 3 * math.sqrt(runs * alpha * (1 - alpha))
    assert errors["holm"] <= bound and errors["bonferroni"] <= bound, errors
    assert total["holm"] > total["bonferroni"], total
    assert total["bonferroni"] >= 0.5 * 48 * runs  # the tests have power


def test_segcertify_radii_sound() -> None:
    """Per-pixel Bonferroni radii never exceed the exact |c_i|; the common radius is σ·Φ⁻¹(tau) and a
    pixel is kept exactly when its per-pixel radius exceeds it."""
    p = torch.linspace(0.02, 0.999, 64).view(8, 8)
    model = _pixel_model(p)
    exact = (SIGMA * torch.from_numpy(stats.norm.ppf(p.double().numpy()))).abs()
    for seed in range(3):
        (c,) = smoothed_segment_certify(
            model,
            torch.zeros(1, 8, 8),
            sigma=SIGMA,
            n0=20,
            n=2000,
            tau=0.8,
            correction="bonferroni",
            seed=seed,
        )
        assert c.radius == pytest.approx(SIGMA * stats.norm.ppf(0.8))
        kept = c.pred != ABSTAIN
        assert torch.equal(c.pred[kept], (p > 0.5).long()[kept])
        assert (exact[kept] >= c.radius).all()
        ok = ~torch.isnan(c.pixel_radius)
        assert (c.pixel_radius[ok] <= exact[ok] + 1e-9).all()
        assert torch.equal(kept, torch.nan_to_num(c.pixel_radius, nan=-1.0) > c.radius)
        assert int(kept.sum()) > 10


# ---------------------------------------------------------------- dataset level


class _Data:
    """An indexable dataset of (image, label[, mask]) tuples."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor | None = None) -> None:
        self.images, self.labels, self.masks = images, labels, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple:
        if self.masks is None:
            return self.images[i], self.labels[i]
        return self.images[i], self.labels[i], self.masks[i]


def test_classification_summary_consistent() -> None:
    model, w, b = _linear(1)
    dist = torch.tensor([0.3, -0.05, 0.0, 0.2, -0.5, 0.01, 0.12])
    x = _points_at(w, b, dist, 1)
    label, _ = _exact(w, b, x)
    label[1] = 1 - label[1]  # one wrong true label
    ds = _Data(x, label)
    radii = (0.0, 0.1, 0.25)
    s = certify_smoothed(
        model, ds, task="classification", sigma=SIGMA, n0=20, n=500, batch_size=60, radii=radii
    )
    d = json.loads(json.dumps(s.to_dict()))
    assert d["certificate"] == "smoothed" and d["n_images"] == 7 and d["certified_miou"] is None
    assert s.predictions[2] is None and s.sample_radii[2] is None  # on the boundary: abstain
    for r in radii:
        manual = sum(
            p == y and rad is not None and rad > r
            for p, y, rad in zip(s.predictions, label.tolist(), s.sample_radii, strict=True)
        )
        assert s.certified_accuracy[radius_key(r)] == manual / 7
    assert s.certified_accuracy["0"] == s.clean["accuracy"]
    assert s.abstention_rate == sum(p is None for p in s.predictions) / 7
    assert s.certified_accuracy["0.25"] >= 1 / 7  # the 0.3 point
    # image i's result depends on (seed, i), not on how many images are certified
    s3 = certify_smoothed(
        model, ds, task="classification", sigma=SIGMA, n0=20, n=500, batch_size=60, n_images=3
    )
    assert s3.sample_radii == s.sample_radii[:3] and s3.predictions == s.predictions[:3]


def test_segmentation_summary_miou_convention() -> None:
    """Deterministic pixels (p = 1): at small radii every pixel is certified, so the certified mIoU is
    the plain mIoU of prediction vs mask; at r = 1 everything abstains and counts as wrong (mIoU 0)."""
    c = torch.full((8, 8), 100.0)
    c[:, :3] = -100.0  # columns 0-2 → class 1
    model = _PixelThreshold(c)
    mask = torch.zeros(2, 8, 8, dtype=torch.long)
    mask[:, :, :4] = 1  # column 3 is wrong (predicted 0, true 1)
    ds = _Data(torch.zeros(2, 1, 8, 8), torch.tensor([1, 1]), mask)
    s = certify_smoothed(model, ds, task="segmentation", sigma=SIGMA, n0=5, n=300, radii=(36 / 255, 1.0))
    iou1, iou0 = 3 / 4, 4 / 5  # class 1: tp 3 cols, fn 1 col; class 0: tp 4 cols, fp 1 col
    assert s.certified_miou["36/255"] == pytest.approx((iou0 + iou1) / 2)
    assert s.certified_pixel_accuracy["36/255"] == pytest.approx(7 / 8)
    assert s.pixel_abstention_rate == {"36/255": 0.0, "1": 1.0}
    assert s.certified_miou["1"] == 0.0 and s.certified_pixel_accuracy["1"] == 0.0
    assert s.clean["miou"] == pytest.approx((iou0 + iou1) / 2) and s.abstention_rate == 0.0
    assert s.num_classes == 2 and s.correction == "holm"
    json.dumps(s.to_dict())


def _rlip_dataset(name: str, n: int) -> RlipDataset:
    """A small RlipDataset with the info of built-in `name` at 16×16 (random images and masks)."""
    info = dataset_info(name, image_size=16)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, info.in_channels, 16, 16, generator=g)
    labels = torch.randint(0, info.num_classes, (n,), generator=g)
    masks = torch.randint(0, info.num_mask_classes, (n, 16, 16), generator=g)
    return RlipDataset(info, images, labels, masks)


def test_registered_models_end_to_end() -> None:
    shapes = _rlip_dataset("shapes", 2)
    clf = create_model_for("mresnet18_tiny", shapes.info)
    s = certify_smoothed(clf, shapes, sigma=0.25, n0=4, n=16, batch_size=40)
    assert s.task == "classification" and len(s.sample_radii) == 2
    cam = certify_smoothed(
        clf, shapes, sigma=0.25, n0=4, n=16, batch_size=40, task="segmentation", forward=clf.mask_logits
    )
    assert cam.num_classes == shapes.info.num_mask_classes
    assert (cam.forward, cam.rule, s.forward, s.rule) == ("mask_logits", "auto", None, "argmax")
    lesions = _rlip_dataset("lesions", 2)
    seg = certify_smoothed(create_model_for("unet_i2i_tiny", lesions.info), lesions, sigma=0.25, n0=4, n=16)
    assert seg.task == "segmentation" and seg.num_classes == 2
    assert set(seg.certified_miou) == {"36/255", "72/255", "108/255", "0.25", "0.5", "1"}
    json.dumps([s.to_dict(), cam.to_dict(), seg.to_dict()])


# ---------------------------------------------------------------- isolation, errors


class _Recorder(nn.Module):
    """Records the training flag seen in forward; dropout and batch norm that would change in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)
        )
        self.seen: set[bool] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add(self.training)
        return self.body(x)


def test_modes_rng_and_determinism() -> None:
    model = _Recorder().train()
    model.body[3].eval()  # a mixed state must come back as it was
    before = [m.training for m in model.modules()]
    x = torch.rand(3, *SHAPE)
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(5)
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    a = smoothed_certify(model, x, sigma=SIGMA, n0=10, n=100, batch_size=64, seed=4)
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])
    assert [m.training for m in model.modules()] == before and model.seen == {False}
    torch.manual_seed(999)  # a different global state must not matter
    state = torch.get_rng_state()
    b = smoothed_certify(model, x, sigma=SIGMA, n0=10, n=100, batch_size=64, seed=4)
    c = smoothed_certify(model, x, sigma=SIGMA, n0=10, n=100, batch_size=64, seed=5)
    assert a == b
    assert [r.count for r in a] != [r.count for r in c]
    ds = _Data(x, torch.zeros(3, dtype=torch.long))
    s1 = certify_smoothed(model, ds, task="classification", sigma=SIGMA, n0=10, n=100, batch_size=64)
    s2 = certify_smoothed(model, ds, task="classification", sigma=SIGMA, n0=10, n=100, batch_size=64)
    assert s1.sample_radii == s2.sample_radii and [m.training for m in model.modules()] == before
    assert torch.equal(torch.get_rng_state(), state)


def test_errors_are_one_line_rlip_errors() -> None:
    model, _, _ = _linear(0)
    x = torch.rand(*SHAPE)
    with pytest.raises(RlipError, match="alpha"):
        smoothed_certify(model, x, sigma=SIGMA, alpha=1.5)
    with pytest.raises(RlipError, match="sigma"):
        smoothed_certify(model, x, sigma=0.0)
    with pytest.raises(RlipError, match="rule"):
        smoothed_certify(model, x, sigma=SIGMA, rule="median")
    with pytest.raises(RlipError, match="correction"):
        smoothed_segment_certify(_pixel_model(torch.full((4, 4), 0.9)), x, sigma=SIGMA, correction="bh")
    with pytest.raises(RlipError, match="masks"):
        certify_smoothed(model, _Data(x[None], torch.zeros(1)), task="segmentation", sigma=SIGMA, n0=2, n=2)
    with pytest.raises(RlipError, match="num_classes"):
        smoothed_certify(model, x, sigma=SIGMA, n0=2, n=2, rule=lambda out: out.argmax(1))
