"""The rules of 1-Lipschitz building blocks (MaxMin, GroupSort, centering, orthogonal layers as exported)
against dense float64 Jacobians and witnessed pairs at random points of ℝ^d, and their tightness:
a 2-sort costs 1, not 2; a centering costs 1, not 2."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.models.lip_layers import MaxMin, ortho_conv, ortho_conv_transpose
from tests.helpers.oracle import jacobian_norm as _dense_sigma
from tests.helpers.oracle import truths as _truths
from tests.helpers.rules import Fn
from tests.helpers.rules import double as _double


def _maxmin(x):
    a, b = x.split(x.shape[1] // 2, dim=1)
    return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)


def _centre(y):
    return y - y.mean(dim=1, keepdim=True)


def _sort_pair(a, b):
    return torch.cat([torch.maximum(a, b), torch.minimum(b, a)], dim=1)


def _groupsort2(x):  # deel-torchlip's group_sort(x, 2) as it exports: view → min/max over the pair axis
    v = x.view(x.shape[0], x.shape[1] // 2, 2, *x.shape[2:])
    return torch.cat([v.min(2, keepdim=True)[0], v.max(2, keepdim=True)[0]], dim=2).view_as(x)


def _aoc():
    torch.manual_seed(3)
    return nn.Sequential(ortho_conv(4, 6, 3), MaxMin(), ortho_conv(6, 4, 2, 2), MaxMin())


# (name, factory, per-sample shape, expected bound when the rule is exact, else None)
CASES = [
    ("maxmin", lambda: Fn(lambda s, x: _maxmin(3 * x)), (4, 3, 3), 3.0),
    ("maxmin-module", lambda: MaxMin(), (6, 2, 2), 1.0),
    ("groupsort2", lambda: Fn(lambda s, x: _groupsort2(x) * 2), (4, 3, 3), 2.0),
    ("maximum-of-disjoint-slices", lambda: Fn(lambda s, x: torch.maximum(x[:, :2], x[:, 2:])), (4, 3), 1.0),
    ("cat-of-disjoint-slices", lambda: Fn(lambda s, x: torch.cat([x[:, 2:], x[:, :2]], 1)), (4, 2), 1.0),
    (
        "maxmin-of-unrelated-tensors",
        lambda: Fn(lambda s, x: _sort_pair(2 * x, x.flip(1))),
        (3,),
        math.sqrt(5.0),
    ),
    (
        "maxmin-overlapping-slices",
        lambda: Fn(
            lambda s, x: torch.cat([torch.maximum(x[:, :3], x[:, 1:]), torch.minimum(x[:, :3], x[:, 1:])], 1)
        ),
        (4,),
        None,
    ),
    # broadcasting: k copies of an entry cost k·L² (a bug of the general rule, which took √k·L²)
    ("maximum-broadcast", lambda: Fn(lambda s, x: torch.maximum(x, x[:, :1])), (4,), None),
    ("centering", lambda: Fn(lambda s, x: x - x.mean(dim=(-2, -1), keepdim=True) + 0.3), (2, 3, 4), 1.0),
    ("centering-scaled", lambda: Fn(lambda s, x: _centre(2 * x)), (5,), 2.0),
    ("not-centering", lambda: Fn(lambda s, x: x - x.flip(1).mean(dim=1, keepdim=True)), (3,), None),
    ("aoc-convs-maxmin", _aoc, (4, 6, 6), None),
    ("aoc-transpose", lambda: ortho_conv_transpose(4, 2), (4, 3, 3), None),
]


@pytest.mark.parametrize("name,factory,shape,exact", CASES, ids=[c[0] for c in CASES])
def test_bound_is_never_below_the_truth(name, factory, shape, exact):
    torch.manual_seed(0)
    model = factory().eval()
    ub = upper_bound(model, shape)
    assert ub.upper is not None, ub.reasons
    truth = _truths(model, shape)
    assert truth <= ub.upper * (1 + 1e-6), (name, truth, ub.upper)
    if exact is not None:
        assert ub.upper == pytest.approx(exact, rel=1e-5), (name, ub.upper)
        assert truth >= exact * 0.999, (name, truth)  # and it is reached: the rule is exact here


def test_orthogonal_layers_are_bounded_by_one_from_their_weights():
    for model, shape in [(ortho_conv(4, 6, 3), (4, 5, 5)), (ortho_conv(8, 4, 2, 2), (8, 4, 4))]:
        model.eval()
        ub = upper_bound(model, shape, mode="tight")
        exact = _dense_sigma(_double(model), torch.rand(1, *shape, dtype=torch.float64))
        assert exact <= ub.upper <= 1 + 1e-4, (exact, ub.upper)


def test_a_scaled_orthogonal_conv_is_not_called_one_lipschitz():
    conv = ortho_conv(4, 4, 3)
    model = Fn(lambda s, x: 1.5 * _maxmin(conv(x)))
    ub = upper_bound(model.eval(), (4, 5, 5))
    assert ub.upper == pytest.approx(1.5, rel=1e-4)
