"""The dense float64 Jacobian oracle: the exact local Lipschitz constant ‖∂f/∂x‖₂ of a model at a
point (largest singular value of its Jacobian, output and input flattened), and maxima of it over
points of ℝ^d, with witnessed quotients of pairs. Every bound test checks against these."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robustbench_lip.lipschitz.bounds.graph import fixed_weights_copy

Func = Callable[[torch.Tensor], torch.Tensor]


def jacobian_norm(f: Func, x: torch.Tensor, *, vectorize: bool = False) -> float:
    """‖∂f/∂x‖₂ at the point x (any shape, batch included), computed in x's dtype (float64 for a truth)."""
    j = torch.autograd.functional.jacobian(
        lambda t: f(t.view_as(x)).flatten(), x.flatten(), vectorize=vectorize
    )
    return float(torch.linalg.matrix_norm(j.reshape(-1, x.numel()), ord=2))


def dense_norm(f: Func, shape: tuple[int, ...]) -> float:
    """‖J‖₂ of f at a uniform point of [0, 1]^shape (one sample, float64, drawn from the global RNG):
    the exact constant of a linear map."""
    return jacobian_norm(f, torch.rand(1, *shape, dtype=torch.float64), vectorize=True)


def linear_norm(f: Func, shape: tuple[int, ...]) -> float:
    """‖J‖₂ of a linear map f on one float64 sample of `shape`, at the origin (no RNG drawn)."""
    return jacobian_norm(f, torch.zeros(1, *shape, dtype=torch.float64))


def dense_sigma(f: nn.Module, x: torch.Tensor, reflection: bool, create_graph: bool = False) -> torch.Tensor:
    """(N,) largest singular value of each sample's dense Jacobian (or of 2J − I), differentiable
    with create_graph=True."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda z: f(z[None])[0], xi, create_graph=create_graph)
        m = jac.reshape(jac.shape[: jac.dim() - xi.dim()].numel(), xi.numel())
        if reflection:
            m = 2 * m - torch.eye(xi.numel(), dtype=m.dtype)
        out.append(torch.linalg.svdvals(m)[0])
    return torch.stack(out)


def dense_truth(model: nn.Module, shape: tuple[int, ...], points: int = 4, seed: int = 5) -> float:
    """max over points of ‖J(x)‖₂ at x of scales 0.5 … 4 (mostly outside [0, 1]) and one uniform
    point; the model is copied (weights fixed, float64), never changed."""
    m = fixed_weights_copy(model).double().eval()
    g = torch.Generator().manual_seed(seed)
    best = 0.0
    for i in range(points):
        if i == 0:
            x = torch.rand(1, *shape, generator=g, dtype=torch.float64)
        else:
            x = torch.randn(1, *shape, generator=g, dtype=torch.float64) * (0.5 * 2**i)
        best = max(best, jacobian_norm(m, x))
    return best


def truths(model: nn.Module, shape: tuple[int, ...], jacobian: bool = True) -> float:
    """max over witnessed quotients ‖f(x) − f(y)‖/‖x − y‖ of random pairs (scales 0.3 … 3, gaps 1e-3
    and 1) and dense Jacobian norms at 3 random points of ℝ^d (jacobian=False: pairs only, for
    functions whose values autograd does not see). The model is converted to float64 in eval mode."""
    m = model.double().eval()
    g = torch.Generator().manual_seed(7)
    best = 0.0
    with torch.no_grad():
        for scale in (0.3, 1.0, 3.0):
            x = torch.randn(32, *shape, generator=g, dtype=torch.float64) * scale
            for h in (1e-3, 1.0):
                y = x + h * torch.randn(x.shape, generator=g, dtype=torch.float64)
                fx = torch.cat([m(x[i : i + 1]) for i in range(len(x))])
                fy = torch.cat([m(y[i : i + 1]) for i in range(len(y))])
                q = (fx - fy).flatten(1).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
                best = max(best, float(q.max()))
    for i in range(3 if jacobian else 0):
        x = torch.randn(1, *shape, generator=g, dtype=torch.float64) * (0.5 + i)
        best = max(best, jacobian_norm(m, x))
    return best
