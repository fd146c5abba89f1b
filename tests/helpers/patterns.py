"""Certify-and-compare for the block-pattern and outside-library tests: the certified bound against
the dense float64 Jacobian truth (tests.helpers.oracle.dense_truth)."""

from __future__ import annotations

from torch import nn

from robustbench_lip.lipschitz.bounds import upper_bound
from tests.helpers.oracle import dense_truth

TOL = 1e-6  # float64 rounding of the Jacobian against SAFETY-scaled bounds


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
