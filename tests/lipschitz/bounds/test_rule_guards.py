"""The registry's guards against a false certificate: every rule declares the arguments that may carry x
(an undeclared argument computed from x gives null naming it, unless its certified bound is 0), and a
value drawn at random is never a constant. Each model either gets a bound that no dense float64 Jacobian
or witnessed pair at random points of ℝ^d (inside and outside [0, 1]^d) exceeds, or null with the
reason. Parameter ranges and multi-output ops: tests/lipschitz/bounds/test_rule_params.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.lipschitz.bounds import (
    ANY_ARG,
    register_rule,
    registered_ops,
    unregister_rule,
    upper_bound,
)
from robustbench_lip.lipschitz.bounds.propagate import random_op
from robustbench_lip.lipschitz.bounds.rules.registry import get_rule
from tests.helpers.oracle import truths as _truths
from tests.helpers.rules import Fn, V
from tests.helpers.rules import check_sound_or_refused as _check

W = torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(11))


def _custom_op(name: str):
    """A fresh custom op rlip_guard::<name>(x, w) = tanh(x) * w (w a tensor, broadcast)."""

    @torch.library.custom_op(f"rlip_guard::{name}", mutates_args=())
    def op(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * w

    @op.register_fake
    def _(x, w):
        return torch.empty_like(x)

    return op


# --- the registry ------------------------------------------------------------------------------


def test_a_rule_without_lipschitz_args_is_refused_naming_the_op():
    with pytest.raises(TypeError, match=r"rlip_guard\.nodecl\.default.*lipschitz_args"):
        register_rule("rlip_guard.nodecl.default")(lambda ctx: 1.0)
    for bad in ((), ("",), 3):
        with pytest.raises(ValueError, match="lipschitz_args"):
            register_rule("rlip_guard.nodecl.default", lipschitz_args=bad)(lambda ctx: 1.0)
    assert get_rule("rlip_guard.nodecl.default") is None


def test_registering_an_op_twice_needs_replace():
    with pytest.raises(ValueError, match=r"aten\.relu\.default.*replace=True"):
        register_rule("aten.relu.default", lipschitz_args=("self",))(lambda ctx: 0.0)
    assert get_rule("aten.relu.default").family == "activations"  # untouched
    op = _custom_op("twice")
    model = Fn(lambda s, x: op(x, s.v), v=V)
    key = "rlip_guard.twice.default"
    register_rule(key, lipschitz_args=("x",))(lambda ctx: float(ctx.arg("w").abs().max()) * ctx.lip("x"))
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_rule(key, lipschitz_args=("x",))(lambda ctx: 0.0)
        assert upper_bound(model, (4,)).upper == pytest.approx(float(V.max()))
        register_rule(key, lipschitz_args=("x",), replace=True)(lambda ctx: 5.0 * ctx.lip("x"))
        assert upper_bound(model, (4,)).upper == pytest.approx(5.0)
    finally:
        unregister_rule(key)
    assert get_rule(key) is None


def test_a_declared_constant_computed_from_x_gives_null_naming_it():
    op = _custom_op("declared")
    key = "rlip_guard.declared.default"
    register_rule(key, lipschitz_args=("x",))(lambda ctx: float(ctx.arg("w").abs().max()) * ctx.lip("x"))
    try:
        ok = upper_bound(Fn(lambda s, x: op(x, s.v), v=V), (4,))
        assert ok.upper == pytest.approx(float(V.max()))
        ub = upper_bound(Fn(lambda s, x: op(x, 3 * x + 1)), (4,))  # tanh(x)·(3x + 1): slope unbounded
        assert ub.upper is None and ub.reflection is None
        assert any(p.op == key and "argument 'w' depends on the input" in p.reason for p in ub.problems), (
            ub.reasons
        )
    finally:
        unregister_rule(key)


def test_every_rule_is_registered_once_with_declared_arguments_of_its_schema():
    from robustbench_lip.lipschitz.bounds.rules import (
        activations,
        constrained,
        convpatterns,
        linear,
        structural,
    )

    for op, fn in [
        ("aten.cat.default", constrained.cat),
        ("aten.maximum.default", constrained.maximum),
        ("aten.sub.Tensor", constrained.sub),
        ("aten.add.Tensor", constrained.add),
        ("aten.add.Scalar", constrained.add),
        ("aten.convolution.default", convpatterns.convolution),
    ]:
        assert get_rule(op).fn is fn  # the refinement, which delegates to the general rule
    assert get_rule("aten.fmax.default").fn is activations.maximum
    general = (structural.cat, linear.sub, linear.add, linear.convolution)
    assert not [op for op in registered_ops() if get_rule(op).fn in general]
    for op in registered_ops():
        entry = get_rule(op)
        assert entry.lipschitz_args == ANY_ARG or (
            isinstance(entry.lipschitz_args, tuple) and entry.lipschitz_args
        )
        ns, name, overload = [*op.split("."), "", ""][:3]
        packet = getattr(getattr(torch.ops, ns, None), name, None) if ns == "aten" else None
        if packet is None or entry.lipschitz_args == ANY_ARG:
            continue
        schema = {a.name for a in getattr(packet, overload)._schema.arguments}
        assert set(entry.lipschitz_args) <= schema | {"a", "self"}, (op, entry.lipschitz_args, schema)
        assert set(entry.lipschitz_args) & schema, (op, entry.lipschitz_args, schema)


# --- arguments computed from x -----------------------------------------------------------------

# (name, factory, per-sample shape, None: a bound is expected | (op, text the reason must contain))
ARGUMENT_CASES = [
    ("rsub-x-in-other", lambda: Fn(lambda s, x: torch.rsub(x, 6 * F.relu(x + 0.5))), (5,), None),
    (
        "rsub-x-in-other-alpha",
        lambda: Fn(lambda s, x: torch.rsub(x, 2.5 * F.relu(x - 0.3), alpha=-0.25)),
        (5,),
        None,
    ),
    (
        "rsub-tensor-broadcast",
        lambda: Fn(lambda s, x: torch.rsub(x, 4 * x.amax(1, keepdim=True))),
        (3,),
        None,
    ),
    (
        "conv-bias-from-x",
        lambda: Fn(lambda s, x: F.conv2d(x, s.w, bias=7 * x[0, :, 0, 0], padding=1), w=W),
        (4, 3, 3),
        ("convolution", "argument 'bias' depends on the input"),
    ),
    (
        "conv-weight-from-x",
        lambda: Fn(lambda s, x: F.conv2d(x, s.w + x.mean(), padding=1), w=W),
        (4, 3, 3),
        ("convolution", "argument 'weight' depends on the input"),
    ),
    (
        "linear-bias-broadcast-into-rows",
        lambda: Fn(lambda s, x: F.linear(x, s.w[0, 0], bias=-3 * x[0, 1]), w=W),
        (4, 3),
        ("linear", "argument 'bias' depends on the input"),
    ),
    (
        "addmm-bias-from-x-broadcast",
        lambda: Fn(
            lambda s, x: torch.addmm(2 * x.view(4, 3)[1], x.view(4, 3), s.w[0, 0], beta=1.5).view(1, 12), w=W
        ),
        (12,),
        None,
    ),
    (
        "bn-running-mean-from-x",
        lambda: Fn(lambda s, x: F.batch_norm(x, 3 * x.mean((0, 2, 3)), s.v, training=False), v=V),
        (4, 3, 3),
        ("_native_batch_norm_legit_no_training", "argument 'running_mean' depends on the input"),
    ),
    (
        "bn-bias-from-x",
        lambda: Fn(lambda s, x: F.batch_norm(x, -s.v, s.v, bias=5 * x.amax((0, 2, 3)), training=False), v=V),
        (4, 3, 3),
        ("_native_batch_norm_legit_no_training", "argument 'bias' depends on the input"),
    ),
    (
        "conv-then-bn-with-mean-from-x",
        lambda: Fn(
            lambda s, x: F.batch_norm(F.conv2d(x, s.w), x.amin((0, 2, 3)), s.v, training=False), w=W, v=V
        ),
        (4, 4, 4),
        ("_native_batch_norm_legit_no_training", "argument 'running_mean' depends on the input"),
    ),
    (
        "prelu-weight-from-x",
        lambda: Fn(lambda s, x: F.prelu(x, 0.5 * x.mean().view(1))),
        (2, 3, 3),
        ("_prelu_kernel", "argument 'weight' depends on the input"),
    ),
]


@pytest.mark.parametrize("name,factory,shape,refusal", ARGUMENT_CASES, ids=[c[0] for c in ARGUMENT_CASES])
def test_arguments_from_x_get_a_sound_bound_or_null_naming_them(name, factory, shape, refusal):
    _check(factory().eval(), shape, refusal)


def test_rsub_with_x_in_other_is_not_the_old_false_certificate():
    """7·relu(x + 0.2) − x has slope 6: U(A) ≥ 6, and R = 2A − I has slope 11 (not firmly non-expansive)."""
    ub = upper_bound(Fn(lambda s, x: torch.rsub(x, 7 * F.relu(x + 0.2))), (3,))
    assert ub.upper >= 6 and ub.reflection >= 11


# --- randomness --------------------------------------------------------------------------------

RANDOM_CASES = [
    ("x-times-randn", lambda: Fn(lambda s, x: x * torch.randn(x.shape[1:])), (4,), "aten.randn"),
    ("x-plus-noise", lambda: Fn(lambda s, x: x + 0.05 * torch.randn_like(x)), (4,), "aten.randn_like"),
    (
        "x-plus-uniform-noise",
        lambda: Fn(lambda s, x: x + torch.empty(4).uniform_(-0.1, 0.1)),
        (4,),
        "aten.uniform",
    ),
    (
        "bernoulli-mask",
        lambda: Fn(lambda s, x: x * torch.bernoulli(torch.full((4,), 0.3))),
        (4,),
        "aten.rand",
    ),
    (
        "random-weight",
        lambda: Fn(lambda s, x: F.linear(x, s.w[0, 0] + torch.randn(3, 3)), w=W),
        (3,),
        "aten.randn",
    ),
    ("random-permutation", lambda: Fn(lambda s, x: x[:, torch.randperm(4)]), (4,), "aten.randperm"),
    ("randint-scale", lambda: Fn(lambda s, x: x * torch.randint(1, 4, (4,))), (4,), "aten.randint"),
    ("normal-offset", lambda: Fn(lambda s, x: x + torch.normal(torch.zeros(4), 2.0)), (4,), "aten.normal"),
    ("constant-random-output", lambda: Fn(lambda s, x: x * 0 + torch.rand(4)), (4,), "aten.rand"),
]


@pytest.mark.parametrize("name,factory,shape,source", RANDOM_CASES, ids=[c[0] for c in RANDOM_CASES])
def test_a_random_draw_is_never_a_constant(name, factory, shape, source):
    state = torch.random.get_rng_state()
    ub = upper_bound(factory().eval(), shape)
    assert torch.equal(state, torch.random.get_rng_state())
    assert ub.upper is None and ub.reflection is None
    assert any(
        "the output depends on a random draw" in p.reason and source in p.reason for p in ub.problems
    ), ub.reasons


def test_the_recorded_draw_is_not_the_truth():
    """x·randn: each call draws new slopes, so no bound from one recorded draw holds for the map."""
    model = Fn(lambda s, x: x * torch.randn(x.shape[1:]))
    torch.manual_seed(5)
    x = torch.zeros(1, 6)
    y = torch.full((1, 6), 1e-3)
    q = max(float((model(y) - model(x)).norm() / (y - x).norm()) for _ in range(20))
    assert q > 1.0 and upper_bound(model, (6,)).upper is None


def test_dropout_in_a_train_mode_export_is_a_random_draw():
    net = nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.4)).train()
    ep = torch.export.export(net, (torch.rand(1, 5),), strict=False)
    ub = upper_bound(ep, (5,))
    assert ub.upper is None
    assert any(p.op == "aten.native_dropout.default" and "random draw" in p.reason for p in ub.problems), (
        ub.reasons
    )
    assert any("output depends on a random draw (aten.native_dropout" in p.reason for p in ub.problems)


def test_a_random_branch_that_does_not_reach_the_output_is_ignored():
    ub = upper_bound(Fn(lambda s, x: (x * 3, x * torch.randn(4))[0]), (4,))
    assert ub.upper == pytest.approx(3.0) and ub.problems == []


def test_random_ops_are_recognised_by_name_and_by_tag():
    g = torch.fx.Graph()
    x = g.placeholder("x")
    tagged = [
        op
        for op in (torch.ops.aten.poisson.default, torch.ops.aten._standard_gamma.default)
        if torch.Tag.nondeterministic_seeded in op.tags
    ]
    for op, args in [
        (torch.ops.aten.bernoulli.p, (x, 0.5)),
        (torch.ops.aten.exponential.default, (x,)),
        (torch.ops.aten.multinomial.default, (x, 2)),
        (torch.ops.aten.native_dropout.default, (x, 0.5, None)),
        (torch.ops.aten.native_dropout.default, (x, 0.5, True)),
        *[(op, (x,)) for op in tagged],
    ]:
        assert random_op(g.call_function(op, args)) == str(op)
    assert random_op(g.call_function(torch.ops.aten.native_dropout.default, (x, 0.5, False))) is None
    assert random_op(g.call_function(torch.ops.aten.relu.default, (x,))) is None


def test_an_argument_from_x_with_bound_zero_is_a_constant():
    """A shape (sym_size of a dynamic-batch export) or x·0 is constant over ℝ^d: a rule may read it."""
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(net, (torch.rand(2, 2, 6, 6),), dynamic_shapes=({0: batch},), strict=False)
    ub = upper_bound(ep, (2, 6, 6))
    assert ub.upper is not None and ub.problems == [], ub.reasons
    assert _truths(net, (2, 6, 6)) <= ub.upper
    model = Fn(lambda s, x: F.conv2d(x, s.w, bias=0 * x[0, :, 0, 0], padding=1), w=W)
    ub = upper_bound(model, (4, 3, 3))
    assert ub.upper is not None and _truths(model, (4, 3, 3)) <= ub.upper
