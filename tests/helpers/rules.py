"""Tiny models and one check shared by the bound-rule tests: parameter-free models from a function,
and "a bound no truth exceeds, or null naming the op"."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lip.lipschitz.bounds import upper_bound
from tests.helpers.oracle import truths

# a positive per-channel scale (seeded; a constant, not a value drawn in the model)
V = torch.rand(4, generator=torch.Generator().manual_seed(12)) + 0.3


class Fn(nn.Module):
    """A parameter-free model from a function (constants are buffers, so .double() converts them)."""

    def __init__(self, fn, **consts: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        for k, v in consts.items():
            self.register_buffer(k, v)

    def forward(self, x):
        return self.fn(self, x)


def double(m: nn.Module) -> nn.Module:
    """m in float64 and eval mode (in place)."""
    return m.double().eval()


def check_sound_or_refused(model: nn.Module, shape: tuple[int, ...], refusal: tuple[str, str] | None) -> None:
    """refusal None: a bound on A (and on R = 2A − I when given) no truth exceeds; else (op, text):
    null for A and R with a problem on that op whose reason holds text."""
    ub = upper_bound(model, shape)
    if refusal is None:
        assert ub.upper is not None, ub.reasons
        truth = truths(model, shape)
        assert truth <= ub.upper * (1 + 1e-6), (truth, ub.upper)
        if ub.reflection is not None:
            r_truth = truths(Fn(lambda s, x: 2 * model(x) - x), shape)
            assert r_truth <= ub.reflection * (1 + 1e-6), (r_truth, ub.reflection)
        return
    assert ub.upper is None and ub.reflection is None
    op, text = refusal
    assert any(op in p.op and text in p.reason for p in ub.problems), ub.reasons
