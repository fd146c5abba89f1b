"""Rules check the range of their scalar parameters (a softplus threshold's jump, an unbounded ELU /
CELU slope: null with the reason, proved by a witnessed quotient; otherwise a bound that no dense float64
Jacobian or witnessed pair at random points of ℝ^d exceeds, equal to the closed form), and every output
of a multi-output op has its own bound (indices: null)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.lipschitz.bounds import upper_bound
from tests.helpers.oracle import truths as _truths
from tests.helpers.rules import Fn, V
from tests.helpers.rules import check_sound_or_refused as _check

# --- parameter ranges --------------------------------------------------------------------------


def _jump_witness(f, x0: float, h: float = 1e-12) -> float:
    """|f(x0 + h) − f(x0 − h)| / 2h in float64 on a one-entry input: the quotient of a witnessed pair."""
    xs = torch.tensor([[x0 - h], [x0 + h]], dtype=torch.float64)
    y = f(xs)
    return float((y[1] - y[0]).abs().max()) / float(xs[1] - xs[0])


@pytest.mark.parametrize(
    "beta,threshold",
    [(1.5, 0.7), (0.8, -2.5), (0.25, 20.0), (-2.0, 3.0)],
    ids=["small", "negative", "default-threshold", "negative-beta"],
)
def test_softplus_with_a_finite_threshold_jumps_and_gets_null(beta, threshold):
    ub = upper_bound(Fn(lambda s, x: F.softplus(x, beta, threshold)), (3,))
    assert ub.upper is None and ub.problems[0].non_lipschitz and "jump" in ub.problems[0].reason
    jump = math.log1p(math.exp(-threshold)) / abs(beta)
    assert f"{jump:.3g}" in ub.problems[0].reason
    x0 = threshold / beta  # the switch point: witness the jump in float64 (not Lipschitz)
    h = 1e-12 if jump > 1e-6 else 1e-13
    q = _jump_witness(lambda t: F.softplus(t, beta, threshold), x0, h)
    assert q > 1e3 and abs(q * 2 * h - jump) < 0.05 * jump + 1e-12


def test_softplus_without_threshold_is_bounded_by_one():
    model = Fn(lambda s, x: 2 * F.softplus(x, 0.3, math.inf))
    ub = upper_bound(model, (4,))
    assert ub.upper == pytest.approx(2.0) and _truths(model, (4,)) <= ub.upper


@pytest.mark.parametrize(
    "name,fn,x0,reason",
    [
        ("celu-negative-alpha", lambda t: F.celu(t, -0.6), -8.0, "celu"),
        ("elu-negative-input-scale", lambda t: torch.ops.aten.elu(t, 0.9, 1.3, -0.4), -40.0, "elu"),
    ],
)
def test_unbounded_slopes_get_null(name, fn, x0, reason):
    ub = upper_bound(Fn(lambda s, x: fn(x)), (3,))
    assert ub.upper is None and ub.problems[0].non_lipschitz
    assert reason in ub.problems[0].op and "not Lipschitz" in ub.problems[0].reason
    assert _jump_witness(fn, x0, 1e-7) > 1e3  # a witnessed slope above any bound one might have given


PARAMETER_CASES = [
    ("elu-large-input-scale", lambda: Fn(lambda s, x: torch.ops.aten.elu(x, 2.5, 0.7, 3.0)), (4,), 5.25),
    ("elu-zero-input-scale", lambda: Fn(lambda s, x: torch.ops.aten.elu(x, 2.5, -0.7, 0.0)), (4,), 0.7),
    (
        "elu-negative-scale-zero-alpha",
        lambda: Fn(lambda s, x: torch.ops.aten.elu(x, 0.0, 1.2, -3.0)),
        (4,),
        1.2,
    ),
    ("celu-positive-alpha", lambda: Fn(lambda s, x: F.celu(x, 1.7)), (4,), 1.0),
    ("leaky-steep", lambda: Fn(lambda s, x: F.leaky_relu(x, 4.5)), (4,), 4.5),
    ("hardtanh-inverted", lambda: Fn(lambda s, x: torch.ops.aten.hardtanh(x, 1.0, -1.0) + x), (4,), 1.0),
    ("clamp-inverted", lambda: Fn(lambda s, x: x.clamp(0.4, -0.4) * 3 + x), (4,), 1.0),
    ("prelu-constant-steep", lambda: nn.PReLU(2, init=3.5), (2, 2, 2), 3.5),
]


@pytest.mark.parametrize("name,factory,shape,exact", PARAMETER_CASES, ids=[c[0] for c in PARAMETER_CASES])
def test_parameterised_activations_are_sound_and_exact(name, factory, shape, exact):
    model = factory().eval()
    _check(model, shape, None)
    assert upper_bound(model, shape).upper == pytest.approx(exact, rel=1e-6)


# --- multi-output ops --------------------------------------------------------------------------

MULTI_OUTPUT_CASES = [
    ("log-sigmoid-buffer", lambda: Fn(lambda s, x: 3 * torch.ops.aten.log_sigmoid_forward(x)[1]), (4,), None),
    (
        "log-sigmoid-both",
        lambda: Fn(
            lambda s, x: torch.ops.aten.log_sigmoid_forward(x)[0] - torch.ops.aten.log_sigmoid_forward(x)[1]
        ),
        (4,),
        None,
    ),
    (
        "max-dim-indices",
        lambda: Fn(lambda s, x: x + x.max(dim=1, keepdim=True).indices),
        (4,),
        ("getitem", "discrete"),
    ),
    ("min-dim-indices", lambda: Fn(lambda s, x: x.min(dim=1).indices.float()), (4,), ("getitem", "discrete")),
    ("sort-indices", lambda: Fn(lambda s, x: x.sort(dim=1).indices * 1.0), (4,), ("getitem", "discrete")),
    ("topk-indices", lambda: Fn(lambda s, x: x.topk(2, dim=1).indices * 1.0), (4,), ("getitem", "discrete")),
    (
        "max-pool-indices",
        lambda: Fn(lambda s, x: F.max_pool2d(x, 2, return_indices=True)[1] * 1.0),
        (1, 4, 4),
        ("getitem", "discrete"),
    ),
    (
        "max-over-one-entry-indices",
        lambda: Fn(lambda s, x: x + x.max(dim=1, keepdim=True).indices),
        (1,),
        None,
    ),
    (
        "dropout-eval-both-outputs",
        lambda: Fn(
            lambda s, x: (
                2 * torch.ops.aten.native_dropout(x, 0.3, False)[0]
                + torch.ops.aten.native_dropout(x, 0.3, False)[1]
            )
        ),
        (4,),
        None,
    ),
    (
        "bn-functional-five-outputs",
        lambda: Fn(
            lambda s, x: (lambda o: o[0] * 2 + o[3].view(1, -1, 1, 1) + o[4].view(1, -1, 1, 1))(
                torch.ops.aten._native_batch_norm_legit_functional(x, None, None, -s.v, s.v, False, 0.1, 1e-5)
            ),
            v=V,
        ),
        (4, 2, 2),
        None,
    ),
]


@pytest.mark.parametrize(
    "name,factory,shape,refusal", MULTI_OUTPUT_CASES, ids=[c[0] for c in MULTI_OUTPUT_CASES]
)
def test_every_output_of_a_multi_output_op_has_its_own_bound(name, factory, shape, refusal):
    _check(factory().eval(), shape, refusal)


def test_log_sigmoid_buffer_is_not_bounded_by_zero():
    ub = upper_bound(Fn(lambda s, x: torch.ops.aten.log_sigmoid_forward(x)[1]), (2,))
    assert ub.upper >= 0.99  # exp(−|x|) has slope → 1 at 0
    assert _jump_witness(lambda t: torch.ops.aten.log_sigmoid_forward(t)[1], -1e-4, 1e-6) > 0.99
