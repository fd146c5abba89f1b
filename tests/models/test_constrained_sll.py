"""The SLL/AOL layers and `sllnet`: 1-Lipschitz by dense float64 Jacobians at several points (with
parameters drawn at scales other than the init), the SLL condition ‖diag(t)^½ W‖ ≤ 1 as an operator
on the grid, registry and save/load, the CAM masks, the certifier's bound (the tight one needs the
SLL pattern rule) and the collapse flag of a training record."""

from __future__ import annotations

import pytest
import torch

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.lower import lower_bounds
from robustbench_lip.lipschitz.margins import linear_head
from robustbench_lip.modelio import load_model, save_model
from robustbench_lip.models import create_model, list_models, model_family
from robustbench_lip.models.sll_layers import (
    AOLConv2d,
    OrthoConv1x1,
    OrthoLinear,
    SLLConv2d,
    SLLLinear,
    sll_scale,
)
from tests.helpers.oracle import jacobian_norm as jac_norm

TINY = ["sllnet_tiny", "sllnet_cam_tiny"]


def _randomise(module: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return module


LAYERS = [
    (lambda: SLLConv2d(3, 3), (1, 3, 5, 4)),
    (lambda: SLLConv2d(2, 5), (1, 2, 6, 6)),
    (lambda: SLLConv2d(4, 1), (1, 4, 3, 3)),
    (lambda: SLLLinear(7), (1, 7)),
    (lambda: SLLLinear(5, hidden=11), (1, 5)),
    (lambda: AOLConv2d(3, 6, 3), (1, 3, 5, 5)),
    (lambda: AOLConv2d(8, 2, 1), (1, 8, 3, 2)),
    (lambda: AOLConv2d(4, 4, 5), (1, 4, 4, 4)),
    (lambda: OrthoLinear(9, 4), (1, 9)),
    (lambda: OrthoLinear(3, 6), (1, 3)),
]


@pytest.mark.parametrize("i", range(len(LAYERS)))
@pytest.mark.parametrize("scale", [0.05, 3.0])
def test_layers_are_1_lipschitz_by_dense_jacobian(i, scale):
    make, shape = LAYERS[i]
    layer = _randomise(make(), scale, seed=i)
    gen = torch.Generator().manual_seed(100 + i)
    norms = [jac_norm(layer, 2.0 * torch.randn(shape, generator=gen, dtype=torch.float64)) for _ in range(4)]
    assert max(norms) <= 1 + 1e-6
    assert max(norms) > 0.3  # not vacuous: the layer passes signal


def test_sll_condition_holds_as_an_operator_on_the_grid():
    """‖diag(t)^½ W‖ ≤ 1 for the padded conv W on a small grid (its dense matrix), and it is tight
    enough to matter (> 0.5): t is not just made tiny."""
    torch.manual_seed(4)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64) * 0.7
    t = sll_scale(w)

    def op(x):
        return t.sqrt()[None, :, None, None] * torch.nn.functional.conv2d(x, w, padding=1)

    n = jac_norm(op, torch.zeros(1, 3, 6, 5, dtype=torch.float64))
    assert 0.5 < n <= 1 + 1e-9


def test_ortho_conv1x1_scale():
    layer = _randomise(OrthoConv1x1(6, 3, scale=2.5), 1.0, 0)
    n = jac_norm(layer, torch.randn(1, 6, 2, 2, dtype=torch.float64))
    assert n == pytest.approx(2.5, rel=1e-9)


@pytest.mark.parametrize("arch", TINY)
def test_tiny_networks_are_1_lipschitz(arch):
    torch.manual_seed(1)
    model = create_model(arch, image_size=(8, 8)).double().eval()
    for p in model.parameters():  # away from the identity-like init
        p.data.add_(0.3 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(2)
    norms = [jac_norm(model, torch.rand(1, 3, 8, 8, generator=gen, dtype=torch.float64)) for _ in range(3)]
    assert max(norms) <= 1 + 1e-6 and max(norms) > 0.01


def test_registered_and_constructor_checks():
    names = set(list_models("sllnet*"))
    assert {"sllnet", "sllnet_w16", "sllnet_cam", "sllnet_cam_w16", *TINY} <= names
    assert all(model_family(n) == "constrained" for n in names)
    m = create_model("sllnet_w16", mean=(0.5, 0.4, 0.3), std=(0.2,) * 3)
    assert m.config.std == ()  # never divided by std: that would scale the constant
    assert 230_000 < sum(p.numel() for p in m.parameters()) < 250_000
    with pytest.raises(RlipError, match="divisible"):
        create_model("sllnet_tiny", image_size=(12, 12))
    with pytest.raises(RlipError, match="head must be"):
        create_model("sllnet_tiny", head="avg")
    with pytest.raises(RlipError, match="dense head"):
        create_model("sllnet_tiny").class_maps(torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("arch", TINY)
def test_save_load_round_trip_and_masks(tmp_path, arch):
    torch.manual_seed(0)
    m = create_model(arch).eval()
    x = torch.rand(3, *m.config.input_size)
    save_model(m, tmp_path / "m")
    back = load_model(tmp_path / "m").eval()
    assert back.config == m.config
    torch.testing.assert_close(back(x), m(x))
    if arch == "sllnet_cam_tiny":
        torch.testing.assert_close(m.class_maps(x).mean((2, 3)), m(x))
        mask = back.predict_mask(x)
        assert mask.shape == (3, 16, 16) and mask.dtype == torch.int64
        assert int(mask.max()) <= m.config.num_mask_classes - 1


def test_linear_heads_are_recognised():
    torch.manual_seed(0)
    dense = linear_head(create_model("sllnet_tiny").eval(), (3, 16, 16))
    cam = linear_head(create_model("sllnet_cam_tiny").eval(), (3, 16, 16))
    assert dense.structure == "linear" and cam.structure == "conv1x1+mean"
    # orthonormal rows: ‖W_i − W_j‖ = √2 (times the certifier's safety factor)
    off = ~torch.eye(10, dtype=torch.bool)
    assert torch.allclose(dense.pair_norms[off], torch.full((90,), 2**0.5, dtype=torch.float64), rtol=1e-4)


@pytest.mark.parametrize("arch", TINY)
def test_certifier_bound_is_finite_and_sound(arch):
    torch.manual_seed(0)
    m = create_model(arch).eval()
    ub = upper_bound(m, m.config.input_size)
    x = torch.rand(4, *m.config.input_size, generator=torch.Generator().manual_seed(1))
    low = lower_bounds(m, x, iters=10, steps=3)
    assert ub.upper is not None and 0 < low.lower <= ub.upper and low.lower <= 1 + 1e-5


@pytest.mark.parametrize("arch", TINY)
def test_certifier_bound_is_tight_with_the_sll_rule(arch):
    torch.manual_seed(0)
    m = create_model(arch).eval()
    assert upper_bound(m, m.config.input_size).upper <= 1.05
