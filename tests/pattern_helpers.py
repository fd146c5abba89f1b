"""Shared truths for the block-pattern tests: dense float64 Jacobian norms at random points of ℝ^d."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.bounds.graph import fixed_weights_copy

TOL = 1e-6  # float64 rounding of the Jacobian against SAFETY-scaled bounds


def dense_truth(model: nn.Module, shape: tuple[int, ...], points: int = 4, seed: int = 5) -> float:
    """max over points of ‖J(x)‖₂ (dense float64 Jacobian) at x of scales 0.5 … 4 (mostly outside
    [0, 1]) and one uniform point; the model is copied (weights fixed, float64), never changed."""
    m = fixed_weights_copy(model).double().eval()
    g = torch.Generator().manual_seed(seed)
    best = 0.0
    for i in range(points):
        if i == 0:
            x = torch.rand(1, *shape, generator=g, dtype=torch.float64)
        else:
            x = torch.randn(1, *shape, generator=g, dtype=torch.float64) * (0.5 * 2**i)
        j = torch.autograd.functional.jacobian(lambda t, x=x: m(t.view_as(x)).flatten(), x.flatten())
        best = max(best, float(torch.linalg.matrix_norm(j.reshape(-1, x.numel()), 2)))
    return best


def certify(model: nn.Module, shape: tuple[int, ...], mode: str = "fast") -> tuple[float, list[str]]:
    """(certified upper bound, the per-layer methods); fails the test when the bound is null."""
    ub = upper_bound(model, shape, mode=mode)  # type: ignore[arg-type]
    assert ub.upper is not None, ub.reasons
    return ub.upper, [layer.method for layer in ub.layers]


def assert_sound(
    model: nn.Module, shape: tuple[int, ...], mode: str = "fast"
) -> tuple[float, float, list[str]]:
    """Certify and check the bound is not below the dense-Jacobian truth: (bound, truth, methods)."""
    bound, methods = certify(model, shape, mode)
    truth = dense_truth(model, shape)
    assert truth <= bound * (1 + TOL), (truth, bound, methods)
    return bound, truth, methods
