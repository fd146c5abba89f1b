"""Certified conv norms (conv.py, embedding.py, gram.py) against dense float64 operator norms."""

from __future__ import annotations

import itertools
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from robustbench_lip.lipschitz.bounds import conv as conv_mod
from robustbench_lip.lipschitz.bounds import conv2d_bound, gram


def padded_conv(w, stride, pad, dilation, groups, pmode):
    """x ↦ conv2d(pad(x)) with pad an int (all sides) in pmode."""

    def f(x):
        if pmode == "zeros":
            return F.conv2d(x, w, stride=stride, padding=pad, dilation=dilation, groups=groups)
        x = F.pad(x, (pad,) * 4, mode=pmode) if pad else x
        return F.conv2d(x, w, stride=stride, dilation=dilation, groups=groups)

    return f


def exact_norm(f, in_shape) -> float:
    """σ_max of the explicit matrix of the linear map f on inputs of in_shape (float64)."""
    n = in_shape[0] * in_shape[1] * in_shape[2]
    basis = torch.eye(n, dtype=torch.float64).view(n, *in_shape)
    with torch.no_grad():
        return float(torch.linalg.matrix_norm(f(basis).reshape(n, -1), 2))


def force_embedding(monkeypatch):
    """Disable the explicit-matrix path so the embeddings themselves are tested."""
    monkeypatch.setattr(conv_mod, "dense_cost_ok", lambda *a: False)


CASES = [
    (k, s, d, g, p, hw, pm)
    for k, s, d, g, p, hw, pm in itertools.product(
        [1, 2, 3, 5], [1, 2, 3], [1, 2], [1, 2], [0, 1, 2], [(5, 5), (6, 4), (7, 9)],
        ["zeros", "circular", "reflect", "replicate"],
    )
    if (d == 1 or k > 1) and (pm == "zeros" or p < min(hw)) and hw[0] + 2 * p >= d * (k - 1) + 1
    and hw[1] + 2 * p >= d * (k - 1) + 1
]


@pytest.mark.parametrize("path", ["dense", "spectrum", "tap-grams"])
def test_every_path_is_sound_on_random_configs(monkeypatch, path):
    gen = torch.Generator().manual_seed(7)
    dense = path == "dense"
    if not dense:
        force_embedding(monkeypatch)
        costs = (0.0, 1.0) if path == "spectrum" else (1.0, 0.0)
        monkeypatch.setattr("robustbench_lip.lipschitz.bounds.embedding._costs", lambda *a: costs)
    rows = CASES[:: 3 if dense else 2]
    for k, s, d, g, p, hw, pm in rows:
        w = torch.randn(4, 4 // g, k, k, generator=gen, dtype=torch.float64)
        b, method = conv2d_bound(w, hw, s, p, d, g, padding_mode=pm)
        ex = exact_norm(padded_conv(w, s, p, d, g, pm), (4, *hw))
        assert b >= ex * (1 - 1e-12), (k, s, d, g, p, hw, pm, b, ex, method)
        if dense or method == "1x1-exact" or (pm == "circular" and method == "circular-exact"):
            assert b <= ex * (1 + 1e-4) + 1e-12, (k, s, d, g, p, hw, pm, b, ex, method)


def test_transposed_conv_has_the_norm_of_its_adjoint_on_its_output_grid():
    gen = torch.Generator().manual_seed(3)
    for k, s, p, op in [(3, 2, 1, 1), (4, 2, 1, 0), (2, 2, 0, 0), (5, 3, 2, 2)]:
        w = torch.randn(5, 3, k, k, generator=gen, dtype=torch.float64)  # (c_in, c_out, k, k)
        x_hw = (4, 5)
        out = F.conv_transpose2d(torch.zeros(1, 5, *x_hw, dtype=torch.float64), w, stride=s, padding=p,
                                 output_padding=op)
        b, _ = conv2d_bound(w, tuple(out.shape[-2:]), s, p)
        adj = partial(F.conv_transpose2d, weight=w, stride=s, padding=p, output_padding=op)
        ex = exact_norm(adj, (5, *x_hw))
        assert ex * (1 - 1e-12) <= b <= ex * (1 + 1e-4)


def test_one_by_one_conv_is_its_matrix_norm_without_a_frequency_tensor(monkeypatch):
    calls = []
    monkeypatch.setattr("robustbench_lip.lipschitz.bounds.embedding._spectrum_blocks",
                        lambda *a: calls.append(a) or iter(()))
    w = torch.randn(96, 64, 1, 1, dtype=torch.float64)
    b, method = conv2d_bound(w, (50, 50), 2, 0)
    assert method == "1x1-exact" and not calls
    sig = float(torch.linalg.matrix_norm(w[:, :, 0, 0], 2))
    assert sig <= b <= sig * (1 + 1e-5)
    b2, _ = conv2d_bound(w[:, :32], (50, 50), 1, 2, groups=2, padding_mode="replicate")  # corner copies 9×
    sig2 = max(float(torch.linalg.matrix_norm(w[i * 48:(i + 1) * 48, :32, 0, 0], 2)) for i in range(2))
    assert sig2 * 3 <= b2 <= sig2 * 3 * (1 + 1e-5)


def test_blocked_frequencies_give_the_unblocked_bound(monkeypatch):
    force_embedding(monkeypatch)
    w = torch.randn(6, 5, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    one, _ = conv2d_bound(w, (9, 8), 2, 1)
    # one frequency per block
    monkeypatch.setattr("robustbench_lip.lipschitz.bounds.embedding.BLOCK_BYTES", 1)
    blocked, _ = conv2d_bound(w, (9, 8), 2, 1)
    assert blocked == pytest.approx(one, rel=1e-5)


def test_sigma_max_certificate_on_hard_spectra():
    gen = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64, generator=gen))
    for top in ([1.0] * 40, [1.0, 1 - 1e-7] + [0.5] * 38, [3.0] + [2.9999] * 39):
        a = q * torch.tensor(top, dtype=torch.float64)
        b = gram.sigma_max(a)
        assert max(top) <= b <= max(top) * (1 + 1e-5)
    c = torch.randn(7, 30, 20, dtype=torch.complex128, generator=gen)
    ex = float(torch.linalg.matrix_norm(c, 2).max())
    assert ex <= gram.sigma_max(c) <= ex * (1 + 1e-5)
    assert gram.sigma_max(torch.zeros(3, 4, 4)) == 0.0


def test_small_operators_get_the_exact_norm_in_the_default_mode():
    w = torch.randn(16, 16, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    b, method = conv2d_bound(w, (8, 8), 1, 1)
    ex = exact_norm(padded_conv(w, 1, 1, 1, 1, "zeros"), (16, 8, 8))
    assert method == "dense-svd" and ex <= b <= ex * (1 + 1e-5)


def test_network_of_1x1_and_transposed_convs_is_bounded_soundly_and_tightly():
    from torch import nn

    from robustbench_lip.lipschitz.bounds import upper_bound

    torch.manual_seed(11)
    net = nn.Sequential(nn.Conv2d(6, 10, 1), nn.ConvTranspose2d(10, 4, 4, stride=2, padding=1))
    net = net.double().eval()
    shape = (6, 5, 4)
    b = upper_bound(net, shape).upper
    ex = exact_norm(lambda z: net(z) - net(torch.zeros_like(z)), shape)  # the network's exact constant
    n1 = float(torch.linalg.matrix_norm(net[0].weight.detach()[:, :, 0, 0], 2))
    mid = net[0](torch.zeros(1, *shape, dtype=torch.float64))
    n2 = exact_norm(lambda z: net[1](z) - net[1](torch.zeros_like(z)), tuple(mid.shape[1:]))
    assert ex * (1 - 1e-9) <= b <= n1 * n2 * (1 + 1e-4)  # sound; each layer's norm exact


def test_one_lipschitz_conv_net_on_8x8_is_certified_within_5_percent():
    from torch import nn

    from robustbench_lip.lipschitz.bounds import upper_bound

    torch.manual_seed(21)
    c = 12
    net = nn.Sequential(nn.Conv2d(2, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, stride=2),
                        nn.ReLU(), nn.Conv2d(c, 5, 3, padding=1)).double().eval()
    shape = (2, 8, 8)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):  # each conv scaled to exact norm 1 at its input size
                op = partial(F.conv2d, weight=m.weight, stride=m.stride, padding=m.padding)
                m.weight /= exact_norm(op, shape)
                m.bias.zero_()
                shape = tuple(m(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:])
    b = upper_bound(net, (2, 8, 8)).upper
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: net(z.view(1, 2, 8, 8)).flatten(), x.flatten())
    assert float(torch.linalg.matrix_norm(jac, 2)) <= b <= 1.05


def test_bad_inputs_are_one_line_errors():
    from robustbench_lip.errors import RlipError

    w = torch.randn(2, 2, 3, 3)
    with pytest.raises(RlipError, match="non-finite"):
        conv2d_bound(w * float("nan"), (5, 5), 1, 1)
    with pytest.raises(RlipError, match="padding_mode"):
        conv2d_bound(w, (5, 5), 1, 1, padding_mode="mirror")
    assert conv2d_bound(w, (1, 1), 1, 0) == (0.0, "empty output")


@pytest.mark.parametrize("pm", ["zeros", "circular", "reflect", "replicate"])
def test_asymmetric_padding4_against_the_padded_operator(monkeypatch, pm):
    gen = torch.Generator().manual_seed(13)
    w = torch.randn(3, 4, 3, 2, generator=gen, dtype=torch.float64)
    pad = (2, 0, 1, 0)  # top, bottom, left, right

    def op(x):
        xp = F.pad(x, (pad[2], pad[3], pad[0], pad[1]), mode="constant" if pm == "zeros" else pm)
        return F.conv2d(xp, w, stride=(2, 1))

    ex = exact_norm(op, (4, 5, 6))
    b, _ = conv2d_bound(w, (5, 6), (2, 1), 0, 1, 1, pm, padding4=pad)
    assert ex * (1 - 1e-12) <= b <= ex * (1 + 1e-4)
    force_embedding(monkeypatch)
    b2, _ = conv2d_bound(w, (5, 6), (2, 1), 0, 1, 1, pm, padding4=pad)
    assert b2 >= ex * (1 - 1e-12)



@pytest.mark.parametrize(("cin", "cout", "seed"), [(12, 4, 0), (6, 10, 1), (16, 16, 2)])
def test_an_aol_conv_is_bounded_tightly(cin, cout, seed):
    """An AOL conv has many singular values at 1: Lanczos breaks down early, and its estimate (which
    sets τ) must stay a Rayleigh quotient of an orthonormal basis (it was 2.8× the truth)."""
    from robustbench_lip.models.sll_layers import AOLConv2d

    torch.manual_seed(seed)
    w = AOLConv2d(cin, cout, 3).weight.detach().double()
    exact = exact_norm(lambda x: F.conv2d(x, w, padding=1), (cin, 8, 8))
    b, _ = conv2d_bound(w, (8, 8), 1, 1, 1, 1, "zeros", "fast")
    assert exact <= b <= exact * (1 + 1e-4)
