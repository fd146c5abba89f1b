"""Witnessed lower bounds and the FNE test against independent truths (dense SVD, re-evaluation)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from robustbench_lip.lipschitz.lower import fne_search, fne_test, lower_bounds

SHAPE = (2, 4, 4)
D = 2 * 4 * 4


class Dense(nn.Module):
    """z ↦ M z on flattened inputs (same shape out), M a fixed float32 matrix."""

    def __init__(self, m: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(m.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z.flatten(1) @ self.weight.T).view(z.shape)


def _matrix(seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(D, D, generator=g) * scale / D**0.5


def _sigma(m: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(m.double(), 2))


def _requotient(f: nn.Module, w, target: str = "A") -> float:
    m64 = copy.deepcopy(f).double()
    with torch.no_grad():
        a, b = w.x.double(), w.y.double()
        fa, fb = m64(a.clone()), m64(b.clone())
    if target == "reflection":
        fa, fb = 2 * fa - a, 2 * fb - b
    return float((fa - fb).norm() / (a - b).norm())


def _points(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def test_linear_map_lower_is_witnessed_and_near_sigma():
    f = Dense(_matrix(1))
    s = _sigma(f.weight.detach())
    lb = lower_bounds(f, _points(), iters=40, steps=2)
    assert lb.eval_dtype == "float64"
    assert 0.95 * s <= lb.lower <= s * (1 + 1e-9)
    for v in lb.sources.values():
        assert v is None or v <= s * (1 + 1e-9)
    q = _requotient(f, lb.witness)
    assert lb.lower <= q * (1 + 1e-12) and q <= lb.lower * (1 + 1e-7)
    json.dumps(lb.to_dict())  # JSON-ready


def test_reflection_target_against_dense_svd():
    m = _matrix(2, 0.7)
    f = Dense(m)
    s = _sigma(2 * m.double() - torch.eye(D, dtype=torch.float64))
    lb = lower_bounds(f, _points(), target="reflection", iters=40, steps=2)
    assert 0.95 * s <= lb.lower <= s * (1 + 1e-9)
    q = _requotient(f, lb.witness, "reflection")
    assert lb.lower <= q * (1 + 1e-12) and q <= lb.lower * (1 + 1e-7)


class StraightThrough(nn.Module):
    """Value 0.01 x (constant 0.01), but autograd sees the identity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (0.01 * x - x).detach()


def test_straight_through_value_is_not_overestimated():
    lb = lower_bounds(StraightThrough(), _points(), iters=10, steps=2)
    assert lb.lower is not None and lb.lower <= 0.01 * (1 + 1e-6)
    assert lb.autograd_sigma_max == pytest.approx(1.0, rel=1e-3)  # the proposal, not reported as lower
    q = _requotient(StraightThrough(), lb.witness)
    assert lb.lower <= q * (1 + 1e-12)


class DoubledInplaceReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.r = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.r(self.r(self.conv(x)))


class Wrapped(nn.Module):
    """An exported program's module, wrapped as an ordinary module."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _train_mode_export() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU()).train()
    return Wrapped(torch.export.export(net, (torch.rand(6, *SHAPE),)).module())


def _troublemakers() -> dict[str, nn.Module]:
    return {
        "hardsigmoid": nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Hardsigmoid()),
        "instancenorm": nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.InstanceNorm2d(2, affine=True)),
        "inplace_relu": DoubledInplaceReLU(),
        "export_train": _train_mode_export(),
    }


@pytest.mark.parametrize("name", ["hardsigmoid", "instancenorm", "inplace_relu", "export_train"])
def test_awkward_models_do_not_crash_and_are_untouched(name):
    torch.manual_seed(3)
    model = _troublemakers()[name]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    rng = torch.random.get_rng_state()
    x = _points()
    x0 = x.clone()
    for target in ("A", "reflection"):
        lb = lower_bounds(model, x, target=target, iters=8, steps=2)
        assert (lb.lower is not None) or lb.notes
        if lb.lower is not None:
            assert lb.lower <= _requotient(model, lb.witness, target) * (1 + 1e-12)
        json.dumps(lb.to_dict())
    r = fne_test(model, x, steps=2)
    json.dumps(r)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert torch.equal(x, x0)
    assert [m.training for m in model.modules()] == flags
    after = model.state_dict()
    assert set(after) == set(state)
    for k, v in state.items():
        assert torch.equal(after[k], v), k
    if name == "export_train":  # batch statistics: refused with a reason
        assert lb.lower is None and any("batch" in n for n in lb.notes)


def test_forward_failure_and_non_finite_outputs_raise_one_line():
    from robustbench_lip.errors import RlipError

    with pytest.raises(RlipError, match="forward pass") as e:
        lower_bounds(nn.Linear(3, 3), _points())
    assert "\n" not in str(e.value)
    with pytest.raises(RlipError, match="non-finite"):
        lower_bounds(lambda z: z / 0.0, _points())


def test_fne_nonexpansive_average_is_not_violated():
    n = Dense(_matrix(4))
    with torch.no_grad():
        n.weight /= _sigma(n.weight.detach()) / 0.9

    class Averaged(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n = n

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (z + self.n(z)) / 2

    r = fne_test(Averaged(), _points(8), steps=3)
    assert r["violated"] is False and r["witness"] is None and r["min_value"] >= 0
    assert set(r) >= {"violated", "verdict", "min_value", "min_normalised", "pairs_tested", "witness"}


class Doubling(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 2 * z


def test_fne_doubling_is_violated_with_a_float64_witness():
    res = fne_search(Doubling(), _points(8), steps=3)
    assert res.violated is True and res.verdict == "violated"
    w = res.witness
    a, b = w.x.double(), w.y.double()
    da = 2 * a - 2 * b
    v = float((da * (a - b)).sum() - da.pow(2).sum())
    assert v < 0 and v == pytest.approx(w.raw_value, rel=1e-9)
    assert w.normalised == pytest.approx(-2.0, rel=1e-6)
    d = fne_test(Doubling(), _points(8), steps=3)
    assert d["witness"]["value"] < 0
    json.dumps(d)


class HardCodedFloat32(nn.Module):
    """Computes in float32 whatever the input dtype (like an export with hard-coded casts)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z.float() * 0.5).to(z.dtype)


def test_float32_fallback_subtracts_an_allowance_and_says_so():
    lb = lower_bounds(HardCodedFloat32(), _points(), iters=10, steps=2)
    assert lb.eval_dtype == "float32" and any("float64 evaluation unavailable" in n for n in lb.notes)
    assert 0.45 <= lb.lower <= 0.5
    assert lb.witness.x.dtype == torch.float32 and lb.lower <= lb.witness.raw_quotient
