"""Attacks: ε-ball and [0, 1] properties, torchattacks equivalence, isolation of modes and RNG,
loss formulas, evaluate_attacks() properties, and PGD against a Lipschitz certificate."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn
from torch.utils.data import Dataset

from robustbench_lip.attacks.classification import ClassificationAttack
from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.segmentation import (
    SegmentationAttack,
    cospgd_loss,
    segpgd_loss,
)
from robustbench_lip.config import DatasetInfo
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.attacks.metrics import evaluate_attacks
from robustbench_lip.models import create_model

TOL = 1e-6


# ----------------------------------------------------------------------------- fixtures
class TinyNet(nn.Module):
    """conv → BN → ReLU → pool → linear: a small classifier with a BatchNorm."""

    def __init__(self, in_ch: int = 3, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 4)
        return self.fc(h.flatten(1))


class Flaky(nn.Module):
    """Wraps a model and raises on the `fail_at`-th forward call."""

    def __init__(self, inner: nn.Module, fail_at: int) -> None:
        super().__init__()
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("boom")
        return self.inner(x)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self(x)[:, :, None, None], size=x.shape[-2:])


class Squares(Dataset):
    """K classes: a bright square of random position in channel k mod 3 on a dim noisy
    background; mask label k + 1 inside the square, 0 outside (as the `shapes` convention)."""

    def __init__(self, n: int, k: int = 3, size: int = 16, seed: int = 0, masks: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, size, size, generator=g) * 0.3
        self.y = torch.randint(0, k, (n,), generator=g)
        self.m = torch.zeros(n, size, size, dtype=torch.int64)
        for i in range(n):
            r, c = torch.randint(0, size - 6, (2,), generator=g).tolist()
            self.x[i, self.y[i] % 3, r : r + 6, c : c + 6] = 0.9
            self.m[i, r : r + 6, c : c + 6] = self.y[i] + 1
        self.has_masks = masks
        self.info = DatasetInfo(
            name="squares",
            in_channels=3,
            image_size=(size, size),
            num_classes=k,
            class_names=tuple(str(i) for i in range(k)),
            has_masks=masks,
            num_mask_classes=k + 1 if masks else None,
        )

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return self.x[i], self.y[i], self.m[i] if self.has_masks else None


def _fit(model: nn.Module, ds: Squares, loss_fn, steps: int = 60, lr: float = 0.02) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(ds), (16,), generator=g)
        opt.zero_grad()
        loss_fn(model, ds.x[idx], ds.y[idx], ds.m[idx]).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def data() -> Squares:
    return Squares(48)


@pytest.fixture(scope="module")
def mresnet(data: Squares) -> nn.Module:
    torch.manual_seed(0)
    m = create_model("mresnet18_tiny", num_classes=3, num_mask_classes=4)
    return _fit(m, data, lambda mod, x, y, _m: F.cross_entropy(mod(x), y))


@pytest.fixture(scope="module")
def unet(data: Squares) -> nn.Module:
    torch.manual_seed(0)
    m = create_model("unet_tiny", num_classes=4, num_mask_classes=4)
    return _fit(m, data, lambda mod, x, _y, mm: F.cross_entropy(mod(x), mm))


@pytest.fixture
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet().eval()


# ----------------------------------------------------------------------------- budgets
CASES = [
    ("cls", "fgsm"),
    ("cls", "pgd"),
    ("seg", "fgsm"),
    ("seg", "pgd"),
    ("seg", "segpgd"),
    ("seg", "cospgd"),
]


@pytest.mark.parametrize(("family", "name"), CASES)
@pytest.mark.parametrize(("norm", "eps"), [("linf", 2 / 255), ("linf", 16 / 255), ("l2", 0.1), ("l2", 2.0)])
def test_within_budget_and_unit_box(family: str, name: str, norm: str, eps: float, tiny, data, unet) -> None:
    x, y, m = data.x[:6], data.y[:6], data.m[:6]
    x = x.clone()
    x[0] = 0.0  # corners of the box: clamping must keep [0, 1]
    x[1] = 1.0
    if family == "cls":
        atk = ClassificationAttack(tiny, name, eps, norm, steps=4, alpha=eps, seed=1)
        adv = atk(x, y)
    else:
        atk = SegmentationAttack(unet, name, eps, norm, steps=4, alpha=eps, seed=1)
        adv = atk(x, m)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    delta = (adv - x).flatten(1)
    if norm == "linf":
        assert float(delta.abs().max()) <= eps + TOL
    else:
        assert float(delta.norm(dim=1).max()) <= eps * (1 + TOL) + TOL
    assert float(delta.abs().max()) > 0  # the attack moved


@pytest.mark.parametrize(("family", "name"), CASES)
def test_zero_budget_is_identity(family: str, name: str, tiny, data, unet) -> None:
    x, y, m = data.x[:4], data.y[:4], data.m[:4]
    atk = (
        ClassificationAttack(tiny, name, 0.0, "l2", steps=3)
        if family == "cls"
        else SegmentationAttack(unet, name, 0.0, "linf", steps=3)
    )
    assert torch.equal(atk(x, y if family == "cls" else m), x)


# ----------------------------------------------------------------------------- torchattacks equality
@pytest.mark.parametrize(("norm", "eps", "alpha"), [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.1)])
def test_pgd_bit_identical_to_torchattacks(norm: str, eps: float, alpha: float, tiny, data) -> None:
    x, y = data.x[:8], data.y[:8]
    ref_cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    ref = ref_cls(copy.deepcopy(tiny), eps=eps, alpha=alpha, steps=7, random_start=False)(x, y)
    ours = ClassificationAttack(tiny, "pgd", eps, norm, steps=7, alpha=alpha, random_start=False)(x, y)
    own_loop = SegmentationAttack(
        tiny, "pgd", eps, norm, steps=7, alpha=alpha, random_start=False, ignore_index=None, logits_fn=tiny
    )(x, y)
    assert torch.equal(ours, ref)
    assert torch.equal(own_loop, ref)  # the segmentation engine on image logits is the same loop
    assert not torch.equal(ref, x)


def test_fgsm_equals_torchattacks(tiny, data) -> None:
    x, y = data.x[:8], data.y[:8]
    ref = torchattacks.FGSM(copy.deepcopy(tiny), eps=4 / 255)(x, y)
    assert torch.equal(ClassificationAttack(tiny, "fgsm", 4 / 255)(x, y), ref)


def test_random_start_seeded(tiny, data) -> None:
    x, y = data.x[:4], data.y[:4]
    a = ClassificationAttack(tiny, "pgd", 8 / 255, steps=1, seed=3)(x, y)
    b = ClassificationAttack(tiny, "pgd", 8 / 255, steps=1, seed=3)(x, y)
    c = ClassificationAttack(tiny, "pgd", 8 / 255, steps=1, seed=4)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)
    s1 = SegmentationAttack(tiny, "pgd", 0.3, "l2", steps=1, seed=3, ignore_index=None, logits_fn=tiny)
    s2 = SegmentationAttack(tiny, "pgd", 0.3, "l2", steps=1, seed=3, ignore_index=None, logits_fn=tiny)
    first = s1(x, y)
    assert torch.equal(first, s2(x, y))
    assert not torch.equal(first, s1(x, y))  # consecutive calls draw fresh starts


# ----------------------------------------------------------------------------- isolation
def _rng_states() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def _same_rng(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and np.array_equal(a[2], b[2])


def _train_with_frozen_bn(model: nn.Module) -> list[bool]:
    model.train()
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eval()  # frozen BN inside a training model
    return [mod.training for mod in model.modules()]


@pytest.mark.parametrize(("family", "name"), [*CASES, ("cls", "apgd")])
@pytest.mark.parametrize("fail", [False, True])
def test_modes_and_rng_restored(family: str, name: str, fail: bool, data) -> None:
    torch.manual_seed(0)
    model = Flaky(TinyNet(), fail_at=(1 if name == "fgsm" else 3) if fail else 10**9)
    modes = _train_with_frozen_bn(model)
    before = _rng_states()
    x, y = data.x[:4], data.y[:4]
    if family == "cls":
        atk = ClassificationAttack(model, name, 8 / 255, "linf", steps=4, seed=0)
        target = y
    else:
        atk = SegmentationAttack(model, name, 8 / 255, "linf", steps=4, seed=0, ignore_index=None)
        target = y[:, None, None].expand(-1, 16, 16)
    if fail:
        with pytest.raises(RuntimeError, match="boom"):
            atk(x, target)
    else:
        atk(x, target)
    assert [mod.training for mod in model.modules()] == modes
    assert _same_rng(before, _rng_states())


# ----------------------------------------------------------------------------- losses
def _logits_target(ignore: int | None = 255) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    if ignore is not None:
        target[0, :2] = ignore
    return logits, target


@pytest.mark.parametrize("t", [0, 3, 9])
def test_segpgd_loss_matches_paper(t: int) -> None:
    logits, target = _logits_target()
    steps = 10
    lam = t / (2 * steps)
    valid = target != 255
    ce = torch.stack(
        [
            -torch.log_softmax(logits[i, :, r, c], 0)[target[i, r, c]]
            for i in range(2)
            for r in range(5)
            for c in range(6)
            if valid[i, r, c]
        ]
    )
    pred = logits.argmax(1)[valid]
    correct = pred == target[valid]
    ref = ((1 - lam) * ce[correct].sum() + lam * ce[~correct].sum()) / valid.sum()
    assert float(segpgd_loss(logits, target, 255, t, steps).detach()) == pytest.approx(
        float(ref.detach()), rel=1e-5
    )


def test_cospgd_loss_matches_paper() -> None:
    logits, target = _logits_target()
    valid = target != 255
    tgt = torch.where(valid, target, 0)
    cos = F.cosine_similarity(logits.softmax(1), F.one_hot(tgt, 4).permute(0, 3, 1, 2).float(), dim=1)
    ce = F.cross_entropy(logits, tgt, reduction="none")
    ref = (cos.detach() * ce)[valid].mean()
    assert float(cospgd_loss(logits, target, 255, 0, 5).detach()) == pytest.approx(
        float(ref.detach()), rel=1e-5
    )


@pytest.mark.parametrize("loss", [segpgd_loss, cospgd_loss])
def test_ignored_pixels_get_no_gradient(loss) -> None:
    logits, target = _logits_target()
    (g,) = torch.autograd.grad(loss(logits, target, 255, 2, 5), logits)
    assert float(g[0, :, :2].abs().max()) == 0.0
    assert float(g[1].abs().max()) > 0.0


def test_all_ignored_is_a_no_op(unet, data) -> None:
    x = data.x[:2]
    m = torch.full((2, 16, 16), 255)
    adv = SegmentationAttack(unet, "pgd", 8 / 255, steps=2, random_start=False)(x, m)
    assert torch.isfinite(adv).all() and torch.equal(adv, x)


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_classifier_properties(mresnet, data) -> None:
    calls: list[tuple[int, int]] = []
    out = evaluate_attacks(
        mresnet,
        data,
        [0, 16 / 255],
        "all",
        steps=3,
        n=24,
        batch_size=16,
        seed=0,
        progress=lambda d, t: calls.append((d, t)),
    )
    clean = out["clean"]
    assert clean["accuracy"] > 0.6  # the fixture model learned the task
    assert out["attacks"] == ["fgsm", "pgd", "segpgd", "cospgd"]
    assert calls[-1][0] == calls[-1][1] == 2 * 2 * 4
    by = {(r["eps_text"], r["attack"]): r for r in out["results"]}
    for a in ("fgsm", "pgd", "segpgd", "cospgd", "worst"):
        r0 = by[("0", a)]
        assert {k: r0[k] for k in clean} == clean  # ε = 0: clean metrics exactly
        assert by[("16/255", a)]["accuracy"] <= clean["accuracy"]
    # worst keeps a label flip whenever any attack found one
    assert by[("16/255", "worst")]["accuracy"] <= min(by[("16/255", a)]["accuracy"] for a in ("fgsm", "pgd"))
    assert by[("16/255", "pgd")]["accuracy"] < clean["accuracy"]
    assert out["levels"] == {"accuracy": "image", "precision": "image", "miou": "pixel"}
    assert clean["miou"] is not None


def test_evaluate_segmenter_worst_is_pixelwise_worst(unet, data) -> None:
    out = evaluate_attacks(unet, data, [8 / 255], "all", norm="linf", steps=3, n=16, batch_size=8)
    assert out["task"] == "segmenter" and out["objective"] == "pixel"
    res = {r["attack"]: r for r in out["results"]}
    assert set(res) == {"fgsm", "pgd", "segpgd", "cospgd", "worst"}
    for a in ("fgsm", "pgd", "segpgd", "cospgd"):
        assert res[a]["accuracy"] <= out["clean"]["accuracy"] + 1e-12
    # per image the worst attack has the lowest pixel accuracy → dataset pixel accuracy ≤ each
    assert res["worst"]["accuracy"] <= min(res[a]["accuracy"] for a in ("fgsm", "pgd", "segpgd", "cospgd"))
    assert res["pgd"]["accuracy"] < out["clean"]["accuracy"]


def test_evaluate_pixel_objective_for_classifier(mresnet, data) -> None:
    out = evaluate_attacks(mresnet, data, [8 / 255], ["pgd"], steps=2, n=8, batch_size=8, objective="pixel")
    assert out["objective"] == "pixel" and len(out["results"]) == 1  # one attack: no "worst"


def test_evaluate_bad_requests(mresnet, unet, data) -> None:
    nomask = Squares(8, masks=False)
    with pytest.raises(RlipError, match="segmentation attack 'segpgd'"):
        evaluate_attacks(mresnet, nomask, [0.1], "segpgd", steps=1)
    with pytest.raises(RlipError, match="unknown attack 'cw'"):
        evaluate_attacks(mresnet, data, [0.1], "cw", steps=1)
    with pytest.raises(RlipError, match="objective 'cls'"):
        evaluate_attacks(unet, data, [0.1], "pgd", steps=1, objective="cls")
    with pytest.raises(RlipError, match="eps"):
        evaluate_attacks(mresnet, data, [1.5], "pgd", steps=1)
    with pytest.raises(RlipError, match="predicts 3 classes but squares has 5"):
        evaluate_attacks(mresnet, Squares(4, k=5), [0.1], "fgsm")
    out = evaluate_attacks(mresnet, data, [0.0], "fgsm", n=10**6, batch_size=64)
    assert out["n"] == len(data)


# ----------------------------------------------------------------------------- certificate
class SNNet(nn.Module):
    """Flatten → spectrally normalised linear → ReLU → spectrally normalised linear (2 classes)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.l1 = sn(nn.Linear(d, 16))
        self.l2 = sn(nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(F.relu(self.l1(x.flatten(1))))


def _certificate(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: list[float]):
    """`rlip certify`'s certificate of the logits map (target A, few lower-bound iterations)."""
    from robustbench_lip.evaluations.lipschitz.certificate import certify

    return certify(model, x, labels, target="A", eps=eps, n_random=2, iters=3, steps=1, seed=0)


def test_l2_pgd_never_flips_certified_samples() -> None:
    """With the certificate of evaluations.lipschitz.certificate.certify
    (U = certified Lipschitz bound of the logits,
    radius ≥ margin / (√2·U), or the head rule's): for every sample whose radius exceeds ε, ℓ2-PGD at ε
    keeps the prediction; samples with a smaller radius do get flipped (the attack is not idle)."""
    g = torch.Generator().manual_seed(0)
    n, d = 96, 1 * 8 * 8
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5
    x[:, :, :, :4] += y.view(-1, 1, 1, 1) * 0.4  # class 1: brighter left half
    x = x.clamp(0, 1)
    torch.manual_seed(0)
    model = SNNet(d)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(80):
        opt.zero_grad()
        F.cross_entropy(model(x) * 4, y).backward()
        opt.step()
    for m in (model.l1, model.l2):  # freeze the normalised weights into plain Linear layers
        nn.utils.parametrize.remove_parametrizations(m, "weight")
    model.eval()
    with torch.no_grad():
        logits = model(x)
    pred = logits.argmax(1)
    exact = math.prod(float(torch.linalg.matrix_norm(m.weight.detach(), ord=2)) for m in (model.l1, model.l2))
    top2 = logits.topk(2, dim=1).values
    eps = float(((top2[:, 0] - top2[:, 1]) / (math.sqrt(2) * exact)).median())
    cert = _certificate(model, x, pred, [eps])
    u = cert.bound.upper
    assert u is not None and u >= exact * (1 - 1e-6)  # the exact product of σ_max is a valid bound too
    radius = (top2[:, 0] - top2[:, 1]) / (math.sqrt(2) * u)  # the certifier's radius: margin / (√2·U)
    adv = ClassificationAttack(model, "pgd", eps, "l2", steps=20, alpha=eps / 4, seed=0)(x, pred)
    with torch.no_grad():
        adv_pred = model(adv).argmax(1)
    certified = radius > eps
    assert int(certified.sum()) > 10
    assert torch.equal(adv_pred[certified], pred[certified])
    # the certifier may also use the last linear layer's rows (‖W_i − W_j‖·U(features)); with the exact
    # feature constant that radius is at least as large as the certifier's, and it too must hold
    w2 = model.l2.weight.detach()
    row = float(torch.linalg.vector_norm(w2[0] - w2[1]))
    u_feat = float(torch.linalg.matrix_norm(model.l1.weight.detach(), ord=2))
    head = (top2[:, 0] - top2[:, 1]) / (row * u_feat)
    exact_cert = (head > eps) | certified
    assert torch.equal(adv_pred[exact_cert], pred[exact_cert])
    # certified accuracy (w.r.t. the clean predictions): between the √2·U rule's and the exact-constant
    # radii's, and ≤ accuracy under the attack
    assert cert.certified_accuracy is not None
    acc = cert.certified_accuracy[format_eps(eps)]
    assert float(certified.double().mean()) - 1e-6 <= acc <= float(exact_cert.double().mean()) + 1e-6
    assert cert.certified_accuracy[format_eps(eps)] <= float((adv_pred == pred).double().mean())
    assert bool((adv_pred[~certified] != pred[~certified]).any())
