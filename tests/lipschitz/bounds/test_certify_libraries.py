"""Models built with orthogonium and deel-torchlip as a user builds them (default layers, default
reparametrisations, circular padding, vanilla_export): certified ≤ 1.05 where the construction
guarantees 1, never below a dense float64 Jacobian; the user's model is left as it was."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds import upper_bound
from tests.helpers.patterns import assert_sound

orthogonium = pytest.importorskip("orthogonium")
tl = pytest.importorskip("deel.torchlip")
from orthogonium.layers import AdaptiveOrthoConv2d, MaxMin, OrthoLinear  # noqa: E402
from orthogonium.layers.conv.AOL.aol import AOLConv2D  # noqa: E402
from orthogonium.layers.conv.SLL.sll_layer import (  # noqa: E402
    SDPBasedLipschitzDense,
    SDPBasedLipschitzResBlock,
)

pytestmark = pytest.mark.filterwarnings("ignore")


def _ortho_net() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(
        AdaptiveOrthoConv2d(3, 6, 3),  # default: circular padding, power iteration + Björck
        MaxMin(),
        AdaptiveOrthoConv2d(6, 8, 2, stride=2, padding=0),  # circular mode, no padding: a plain conv
        MaxMin(),
        AdaptiveOrthoConv2d(8, 8, 3),  # its circular padding reads a MaxMin's concatenation
        MaxMin(),
        nn.Flatten(),
        OrthoLinear(8 * 16, 5),
    )


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_orthogonium_default_layers_certify_from_their_weights():
    model = _ortho_net().eval()
    before = _state(model)
    bound, _, methods = assert_sound(model, (3, 8, 8))
    assert bound <= 1.05, (bound, methods)
    assert sum("circular-padded conv as one operator" in m for m in methods) == 2, methods
    after = _state(model)  # the power-iteration vectors of the user's model were not advanced
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    model(torch.rand(1, 3, 8, 8))  # and the model still runs as it is


def test_orthogonium_sll_and_aol_blocks():
    torch.manual_seed(3)
    conv_net = nn.Sequential(
        SDPBasedLipschitzResBlock(4, 2, 3),
        AOLConv2D(4, 4, 3, padding=1, padding_mode="circular"),
        SDPBasedLipschitzResBlock(4, 1.5, 3),
    ).eval()
    bound, _, methods = assert_sound(conv_net, (4, 8, 8))
    assert bound <= 1.05 and sum("SLL residual step" in m for m in methods) == 2, (bound, methods)
    dense = nn.Sequential(SDPBasedLipschitzDense(6, 6, 10), SDPBasedLipschitzDense(6, 6, 4)).eval()
    bound, _, methods = assert_sound(dense, (6,))
    assert bound <= 1.05 and sum("SLL residual step" in m for m in methods) == 2, (bound, methods)


class _SLLBlock(nn.Module):
    """An SLL block of our own: x − 2·convT(t·relu(conv(x, W, b)), W), t from W (SLL's T, q = 1)."""

    def __init__(self, c: int, hidden: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(hidden, c, 3, 3, generator=g) * 0.2)
        self.b = nn.Parameter(torch.randn(hidden, generator=g) * 0.1)

    def forward(self, x):
        gram = F.conv2d(self.w, self.w, padding=2)
        t = 1.0 / gram.abs().sum(dim=(1, 2, 3))
        u = t[None, :, None, None] * F.relu(F.conv2d(x, self.w, self.b, padding=1))
        return x - 2.0 * F.conv_transpose2d(u, self.w, padding=1)


def test_own_sll_net_with_orthogonium_layers():
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.PixelUnshuffle(2),
        _SLLBlock(8, 12, 1),
        MaxMin(),
        _SLLBlock(8, 6, 2),
        nn.Flatten(),
        OrthoLinear(8 * 16, 4),
    ).eval()
    bound, truth, methods = assert_sound(net, (2, 8, 8))
    assert bound <= 1.05, (bound, methods)
    assert truth > 0.3  # a real network, not a near-zero map


def _deel_net() -> nn.Module:
    torch.manual_seed(4)
    return tl.Sequential(
        tl.SpectralConv2d(2, 4, 3, padding=1),
        tl.GroupSort2(),
        tl.ScaledL2NormPool2d(2),
        tl.SpectralConv2d(4, 8, 3, padding=1),
        tl.GroupSort(4),
        nn.Flatten(),
        tl.SpectralLinear(8 * 16, 6),
        tl.GroupSort2(),
        tl.FrobeniusLinear(6, 1),
    )


@pytest.mark.parametrize("vanilla", [False, True], ids=["as-is", "vanilla_export"])
def test_deel_torchlip_models(vanilla):
    model = _deel_net().eval()
    if vanilla:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = model.vanilla_export().eval()
    bound, _, methods = assert_sound(model, (2, 8, 8))
    assert bound <= 1.05, (bound, methods)
    assert any("L2-norm pooling" in m for m in methods)


def test_deel_l2_pool_alone_is_one():
    pool = tl.ScaledL2NormPool2d(3).eval()
    bound, truth, _ = assert_sound(pool, (2, 9, 9))
    assert bound <= 1 + 1e-9 and truth > 0.99


class _NoCopy(nn.Module):
    """An orthogonium conv inside a module that refuses to be copied."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = AdaptiveOrthoConv2d(2, 4, 3)

    def forward(self, x):
        return self.conv(x)

    def __deepcopy__(self, memo):
        raise TypeError("not copyable")


def test_a_model_that_cannot_be_exported_says_how_to_fix_its_weights():
    with pytest.raises(RlipError) as e:
        upper_bound(_NoCopy().eval(), (2, 6, 6))
    msg = str(e.value)
    assert "remove_parametrizations" in msg and "leave_parametrized=True" in msg
    assert "set_ on a graph input" not in msg and "\n" not in msg


def test_deel_cached_weight_is_the_one_bounded():
    """deel-torchlip's eval forward uses the Björck weight cached at the last training step; a
    parameter changed since then is not what runs, so it is not what is bounded."""
    torch.manual_seed(6)
    model = tl.Sequential(tl.SpectralLinear(6, 6), tl.GroupSort2(), tl.SpectralLinear(6, 3)).eval()
    model.train()
    model(torch.rand(2, 6))  # refresh the caches
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(7.0)  # not seen by the eval forward until the next training step
    bound, truth, _ = assert_sound(model, (6,))
    assert bound <= 1.05 and truth > 0.5, (bound, truth)


def test_an_exported_orthogonium_program_is_refused_with_the_fix():
    model = nn.Sequential(AdaptiveOrthoConv2d(2, 4, 3)).eval()
    ep = torch.export.export(model, (torch.rand(1, 2, 6, 6),), strict=False)
    with pytest.raises(RlipError) as e:
        upper_bound(ep, (2, 6, 6))
    assert "leave_parametrized=True" in str(e.value) and "\n" not in str(e.value)
