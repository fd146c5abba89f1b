"""Jacobian products (lipschitz.jvp) and power iteration on J and 2J − I (lipschitz.spectral) against
the dense Jacobian and its largest singular value."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.jvp import JacobianProducts, check_target
from robustbench_lip.lipschitz.spectral import spectral_norm
from tests.helpers.oracle import dense_sigma


def _classifier() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.Tanh(),
        nn.Conv2d(4, 4, 3, padding=1, stride=2),
        nn.Softplus(),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 3),
    ).double()
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def _image2image() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1), nn.Tanh(), nn.Conv2d(5, 2, 3, padding=1), nn.Sigmoid()
    ).double().eval()  # fmt: skip


@pytest.mark.parametrize(
    ("make", "target"), [(_classifier, "A"), (_image2image, "A"), (_image2image, "reflection")]
)
def test_power_iteration_matches_dense_svd(make, target) -> None:
    f = make()
    x = torch.rand(3, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = spectral_norm(
        f, x, target=target, iters=2000, tol=1e-10, generator=torch.Generator().manual_seed(0)
    )
    truth = dense_sigma(f, x, target == "reflection")
    torch.testing.assert_close(res.sigma, truth, rtol=1e-3, atol=0)
    assert res.sigma.shape == (3,) and res.vector.shape == x.shape
    assert bool(res.converged.all())
    # a lower estimate for any number of iterations
    few = spectral_norm(f, x, target=target, iters=2, generator=torch.Generator().manual_seed(0))
    assert bool((few.sigma <= truth * (1 + 1e-9)).all())


def test_sigma_gradient_matches_dense_gradient() -> None:
    f = _image2image()
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    params = list(f.parameters())
    res = spectral_norm(f, x, target="reflection", iters=2000, tol=1e-12, create_graph=True)
    g_pi = torch.autograd.grad(res.sigma.sum(), params)
    g_dense = torch.autograd.grad(dense_sigma(f, x, True, create_graph=True).sum(), params)
    for a, b in zip(g_pi, g_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-3, atol=1e-6)


def test_modes_untouched_and_warm_start() -> None:
    f = _classifier()
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64)
    cold = spectral_norm(f, x, iters=300, tol=1e-10)
    warm = spectral_norm(f, x, iters=1, u0=cold.vector)
    torch.testing.assert_close(warm.sigma, cold.sigma, rtol=1e-6, atol=0)
    assert not f.training


def test_bad_targets() -> None:
    f = _classifier()
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64)
    with pytest.raises(RlipError, match="reflection"):
        spectral_norm(f, x, target="reflection")
    with pytest.raises(RlipError, match="unknown target"):
        check_target("B", x.shape, x.shape)
    with pytest.raises(ValueError, match="u0 shape"):
        spectral_norm(f, x, u0=torch.ones(2, 2, 4, 4, dtype=torch.float64))


def _dense(f: nn.Module, x: torch.Tensor, reflection: bool) -> list[torch.Tensor]:
    """Each sample's dense Jacobian (out, in) (or 2J − I)."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda z: f(z[None])[0], xi)
        m = jac.reshape(-1, xi.numel())
        out.append(2 * m - torch.eye(xi.numel(), dtype=m.dtype) if reflection else m)
    return out


@pytest.mark.parametrize("method", ["double_backward", "forward", "finite_difference"])
@pytest.mark.parametrize(("make", "target"), [(_classifier, "A"), (_image2image, "reflection")])
def test_products_match_dense_jacobian(make, target: str, method: str) -> None:
    f = make()
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64, generator=gen)
    ops = JacobianProducts(f, x, target, method=method, fd_step=1e-6)
    u = torch.randn(x.shape, dtype=x.dtype, generator=gen)
    ju = ops.jvp(u)
    v = torch.randn(ju.shape, dtype=x.dtype, generator=gen)
    jtv = ops.vjp(v)
    tol = {"rtol": 1e-5, "atol": 1e-7} if method == "finite_difference" else {}
    for i, m in enumerate(_dense(f, x, target == "reflection")):
        torch.testing.assert_close(ju[i].flatten(), m @ u[i].flatten(), **tol)
        torch.testing.assert_close(jtv[i].flatten(), m.T @ v[i].flatten())


def test_products_differentiable_in_x() -> None:
    """jvp(u, create_graph=True) with x requiring grad: ∇ₓ‖J(x)u‖² against a finite difference."""
    f = _image2image()
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    u = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(6))
    d = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(7))

    def q(z: torch.Tensor) -> torch.Tensor:
        return JacobianProducts(f, z, "A").jvp(u, create_graph=True).pow(2).sum()

    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(q(xr), xr)
    h = 1e-6
    fd = (q(x + h * d) - q(x - h * d)) / (2 * h)
    torch.testing.assert_close((g * d).sum(), fd.detach(), rtol=1e-5, atol=1e-9)


def test_finite_difference_spectral_norm_matches_dense() -> None:
    f = _image2image()
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    res = spectral_norm(
        f, x, "reflection", iters=500, tol=1e-10, method="finite_difference", fd_step=1e-5,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    torch.testing.assert_close(res.sigma, dense_sigma(f, x, True), rtol=1e-4, atol=0)
