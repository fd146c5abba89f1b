"""Certified Lipschitz upper bounds: soundness against dense SVDs, composition rules, unknown ops."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds import (
    GELU_LIP,
    SILU_LIP,
    conv2d_bound,
    linear_bound,
    upper_bound,
)
from tests.helpers.oracle import dense_norm


def conv_dense(w, hw, stride, padding, dilation, groups, mode="zeros") -> float:
    def f(z):
        if mode != "zeros":
            z = F.pad(z, (padding,) * 4, mode=mode)
            return F.conv2d(z, w, stride=stride, dilation=dilation, groups=groups)
        return F.conv2d(z, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

    return dense_norm(f, (w.shape[1] * groups, *hw))


@pytest.mark.parametrize("mode", ["fast", "tight"])
def test_conv_bound_is_sound_for_many_random_convs(mode):
    gen = torch.Generator().manual_seed(1)
    cases = list(itertools.product([1, 3, 5], [1, 2], [1, 2], [0, 1, 2], [(4, 4), (5, 7)]))
    for k, s, g, p, hw in cases:
        d = 2 if (k == 3 and p == 2) else 1
        if hw[0] + 2 * p < d * (k - 1) + 1:
            continue
        w = torch.randn(4, 4 // g, k, k, generator=gen, dtype=torch.float64)
        b, _ = conv2d_bound(w, hw, s, p, d, g, mode=mode)
        exact = conv_dense(w, hw, s, p, d, g)
        assert b >= exact * (1 - 1e-9), (k, s, g, p, hw, b, exact)
        if mode == "tight":  # small enough for the explicit operator: (nearly) exact
            assert b <= exact * (1 + 1e-5)


def test_conv_bound_circular_embedding_is_tight_on_larger_grids(monkeypatch):
    from robustbench_lip.lipschitz.bounds import conv as conv_mod

    monkeypatch.setattr(conv_mod, "dense_cost_ok", lambda *a: False)  # test the embedding itself
    w = torch.randn(3, 3, 3, 3, dtype=torch.float64)
    b, method = conv2d_bound(w, (16, 16), 1, 1)
    exact = conv_dense(w, (16, 16), 1, 1, 1, 1)
    assert method == "circular-embedding"
    assert exact <= b <= 1.05 * exact


@pytest.mark.parametrize("pmode", ["circular", "reflect", "replicate"])
def test_conv_bound_other_padding_modes_are_sound(pmode):
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    b, _ = conv2d_bound(w, (5, 6), 1, 1, padding_mode=pmode)
    exact = conv_dense(w, (5, 6), 1, 1, 1, 1, mode=pmode)
    assert b >= exact * (1 - 1e-9)
    if pmode == "circular":
        assert b <= exact * (1 + 1e-5)


def test_linear_bound_is_exact():
    w = torch.randn(7, 5, dtype=torch.float64)
    assert linear_bound(w) == pytest.approx(float(torch.linalg.matrix_norm(w, 2)), rel=2e-6)


def test_activation_constants():
    x = torch.linspace(-10, 10, 200001, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(F.gelu(x).sum(), x)
    assert GELU_LIP >= float(g.abs().max()) and GELU_LIP == pytest.approx(1.1289, abs=1e-4)
    (g,) = torch.autograd.grad(F.silu(x).sum(), x)
    assert SILU_LIP >= float(g.abs().max()) and SILU_LIP == pytest.approx(1.0998, abs=1e-3)


class LinearNet(nn.Module):
    """No activations: conv → BN → strided conv, a residual 1×1 branch, a concat, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(4, 4, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(8 * 3 * 3, 5)

    def forward(self, x):
        z = self.c2(self.bn(self.c1(x)))
        z = z + self.c3(z)
        z = self.pool(self.up(z))
        w = torch.cat([z, 0.5 * z], dim=1)
        return self.fc(w.flatten(1))


def _randomise_bn(bn: nn.BatchNorm2d, gen: torch.Generator) -> None:
    with torch.no_grad():
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) * 2 + 0.2)
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
        bn.weight.copy_(torch.randn(bn.num_features, generator=gen))


@pytest.mark.parametrize("mode", ["fast", "tight"])
def test_linear_network_upper_bound_is_at_least_the_exact_constant(mode):
    gen = torch.Generator().manual_seed(0)
    net = LinearNet().double().eval()
    _randomise_bn(net.bn, gen)
    ub = upper_bound(net, (2, 6, 6), mode=mode)
    exact = dense_norm(net, (2, 6, 6))
    assert ub.unsupported_ops == []
    assert ub.upper >= exact
    assert ub.output_shape == (5,)
    assert ub.reflection_upper() is None  # output shape differs from the input's
    assert any("folded" in layer.method for layer in ub.layers)


def test_bn_folding_matches_the_exact_norm_of_conv_bn():
    gen = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).double().eval()
    _randomise_bn(net[1], gen)
    exact = dense_norm(net, (3, 5, 5))
    ub = upper_bound(net, (3, 5, 5), mode="tight")
    assert exact <= ub.upper <= exact * (1 + 1e-5)
    # the unfolded product ‖conv‖·max|γ|/σ is a (generally looser) bound too
    conv_only = upper_bound(net[0], (3, 5, 5), mode="tight").upper
    scale = (net[1].weight / torch.sqrt(net[1].running_var + net[1].eps)).abs().max().item()
    assert ub.upper <= conv_only * scale * (1 + 1e-9)


def test_standalone_batchnorm_uses_max_scale():
    gen = torch.Generator().manual_seed(4)
    bn = nn.BatchNorm2d(3).double().eval()
    _randomise_bn(bn, gen)
    net = nn.Sequential(nn.ReLU(), bn)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).abs().max().item()
    assert upper_bound(net, (3, 4, 4)).upper == pytest.approx(scale, rel=1e-5)


def _normalised_linear(i: int, o: int, gen: torch.Generator) -> nn.Linear:
    lin = nn.Linear(i, o).double()
    with torch.no_grad():
        w = torch.randn(o, i, generator=gen, dtype=torch.float64)
        lin.weight.copy_(w / torch.linalg.matrix_norm(w, 2))
    return lin


def test_spectrally_normalised_network_is_one_lipschitz():
    gen = torch.Generator().manual_seed(5)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight /= dense_norm(conv, (2, 5, 5))
    net = nn.Sequential(
        conv,
        nn.ReLU(),
        nn.Flatten(),
        _normalised_linear(75, 16, gen),
        nn.Tanh(),
        _normalised_linear(16, 4, gen),
    ).eval()
    ub = upper_bound(net, (2, 5, 5), mode="tight")
    assert ub.upper <= 1 + 1e-3


class SpatialNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ct = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)
        self.ct2 = nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1, groups=1)

    def forward(self, x):
        z = self.ct(x)
        z = F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False)
        z = F.avg_pool2d(z, 3, stride=2, padding=1)
        z = F.adaptive_avg_pool2d(z, (3, 3))
        return self.ct2(z)


def test_spatial_linear_ops_are_sound():
    net = SpatialNet().double().eval()
    ub = upper_bound(net, (2, 4, 4), mode="tight")
    assert ub.unsupported_ops == []
    assert ub.upper >= dense_norm(net, (2, 4, 4))


def test_max_pool_and_nearest_upsampling_constants():
    ub = upper_bound(nn.MaxPool2d(3, stride=1, padding=1), (1, 6, 6))
    assert ub.upper == pytest.approx(3.0)
    ub = upper_bound(nn.MaxPool2d(2), (1, 6, 6))
    assert ub.upper == pytest.approx(1.0)
    ub = upper_bound(nn.Upsample(scale_factor=(2, 3), mode="nearest"), (1, 4, 4))
    assert ub.upper == pytest.approx(math.sqrt(6), rel=1e-5)


def test_normalisation_mean_and_scalar_rules():
    class Norm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("m", torch.tensor([0.5, 0.4]).view(1, 2, 1, 1))
            self.register_buffer("s", torch.tensor([0.25, 0.5]).view(1, 2, 1, 1))

        def forward(self, x):
            return ((x - self.m) / self.s * 3.0).mean(dim=(2, 3))

    ub = upper_bound(Norm(), (2, 4, 4))
    assert ub.upper == pytest.approx(3.0 / 0.25 / 4.0, rel=1e-6)  # mean over 16 pixels: 1/√16


def test_unknown_operator_is_listed_and_upper_is_none():
    class Weird(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            z = self.c(x)
            return self.fc((z * z).mean(dim=(2, 3))) + torch.sort(z.flatten(1), dim=1).values[:, :2]

    ub = upper_bound(Weird(), (1, 4, 4))
    assert ub.upper is None
    assert any("mul" in op for op in ub.unsupported_ops)
    assert all(p.non_lipschitz for p in ub.problems)  # z·z; sorting is 1-Lipschitz and has a rule


def test_branch_not_reaching_the_output_is_not_listed():
    class Side(nn.Module):
        def forward(self, x):
            _ = torch.sort(x.flatten(1), dim=1)
            return torch.relu(x) * 2

    ub = upper_bound(Side(), (1, 3, 3))
    assert ub.upper == pytest.approx(2.0) and ub.unsupported_ops == []


def test_exported_program_and_module_give_the_same_bound():
    gen = torch.Generator().manual_seed(6)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    _randomise_bn(net[1], gen)
    ub_mod = upper_bound(net, (3, 8, 8))
    ep = torch.export.export(net, (torch.rand(1, 3, 8, 8),))
    ub_ep = upper_bound(ep, (3, 8, 8))
    assert ub_mod.graph == ub_ep.graph == "export-core-aten"
    assert ub_ep.upper == pytest.approx(ub_mod.upper, rel=1e-9)


@pytest.mark.slow  # `rlip certify` on a resnet18 .pt2 covers this path in the default run
def test_torchvision_resnet18_is_supported():
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=10).eval()
    ub = upper_bound(net, (3, 32, 32))
    assert ub.unsupported_ops == [] and ub.upper is not None and math.isfinite(ub.upper)
    x = torch.rand(2, 3, 32, 32)
    from robustbench_lip.lipschitz.spectral import spectral_norm

    assert float(spectral_norm(net, x, iters=5).sigma.max()) <= ub.upper


def test_bad_input_shape_and_modes_are_errors():
    with pytest.raises(RlipError):
        upper_bound(nn.Conv2d(3, 2, 3), (3, 0, 4))
    with pytest.raises(RlipError):
        upper_bound(nn.Conv2d(3, 2, 3), (3, 8, 8), mode="slow")  # type: ignore[arg-type]
    with pytest.raises(RlipError):
        upper_bound(nn.Conv2d(3, 2, 3), (2, 8, 8))  # wrong channels: the model fails


def test_modes_are_restored():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1)).train()
    upper_bound(net, (1, 5, 5))
    assert net.training and net[1].training
