"""Propagation of certified bounds through a lowered graph, one registered rule per node.

Each node that depends on the input x gets a Bound: a float L with ‖Δnode‖ ≤ L·‖δx‖ (composition:
a rule multiplies its own factor into the bounds of its inputs), or an Affine α·x + g(x) for nodes
of x's own shape, which lets R = 2A − I be bounded by |2α − 1| + 2·Lip(g) instead of 2·U(A) + 1.
A node without a rule, or whose rule raises Unsupported, has no bound, nor has anything
downstream of it; the reasons on the way to the output are collected. Nothing is ever skipped.

Before a rule runs, its node is refused when an argument the rule did not declare in
`lipschitz_args` depends on x, or when an argument that does not depend on x comes from a random
draw (a rule would read it as a constant). Values drawn at random (rand, randn, bernoulli, dropout
in train mode, … and any op torch tags `nondeterministic_seeded`) taint everything computed from
them; an output so tainted has no bound ("the output depends on a random draw").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from robustbench_lip.lipschitz.bounds.graph import LoweredGraph
from robustbench_lip.lipschitz.bounds.rules.registry import (
    DISCRETE,
    Affine,
    NonLipschitz,
    OpContext,
    RuleEntry,
    Unsupported,
    get_rule,
    named_args,
    op_key,
)

RANDOM_OPS = frozenset(
    {
        "rand", "randn", "rand_like", "randn_like", "randint", "randint_like", "randperm",
        "bernoulli", "normal", "normal_functional", "uniform", "exponential", "geometric", "cauchy",
        "log_normal", "random", "multinomial", "poisson", "binomial", "_standard_gamma",
        "_sample_dirichlet", "native_dropout", "dropout", "feature_dropout", "alpha_dropout",
        "feature_alpha_dropout", "_fused_dropout", "rrelu", "rrelu_with_noise",
        "rrelu_with_noise_functional",
    }
)  # fmt: skip
"""Base names (in-place '_' stripped) of ATen ops that draw random numbers; torch's
`Tag.nondeterministic_seeded` adds any other."""


def random_op(n: torch.fx.Node) -> str | None:
    """The op key when node n draws random numbers (by name, or by torch's nondeterministic_seeded
    tag), else None. An op called with train / training False, or dropout_p 0, draws nothing."""
    if n.op != "call_function":
        return None
    t, key = n.target, op_key(n.target)
    if isinstance(t, torch._ops.OpOverload):
        base = t._schema.name.split("::")[-1]
        tagged = torch.Tag.nondeterministic_seeded in getattr(t, "tags", ())
    else:
        base, tagged = key.split(".")[-1], False
    if not tagged and base.rstrip("_") not in RANDOM_OPS and base not in RANDOM_OPS:
        return None
    named = named_args(n)
    if named.get("train") is False or named.get("training") is False:
        return None
    if "dropout_p" in named and named["dropout_p"] == 0:
        return None
    return key


@dataclass
class LayerBound:
    """One node: `factor` its own bound (cumulative / input's; None when not a 1-input node),
    `cumulative` the bound of x ↦ node (None when unbounded), how it was obtained, its shape."""

    name: str
    op: str
    factor: float | None
    cumulative: float | None
    method: str
    out_shape: list[int] | None = None


@dataclass
class Problem:
    """Why a node has no bound: its op key, node name, reason, and whether the op is non-Lipschitz."""

    op: str
    node: str
    reason: str
    non_lipschitz: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "node": self.node, "reason": self.reason, "non_lipschitz": self.non_lipschitz}


@dataclass
class Propagation:
    """The output's bound (None: unbounded), per-node layers and the problems on the way to it."""

    out: Affine | None
    out_shape: tuple[int, ...] | None
    layers: list[LayerBound] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _is_float_tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())


def _total(b: Any) -> float | None:
    if b is None or isinstance(b, tuple):
        return None
    return b.total if isinstance(b, Affine) else float(b)


def _clean(b: Any, out: Any, input_shape: tuple[int, ...]) -> Any:
    """Validate a rule's result: finite, non-negative; Affine only on x's own shape; a tuple has one
    entry per output (None: no bound, DISCRETE: discrete values)."""
    if isinstance(b, tuple):
        outs = out if isinstance(out, (tuple, list)) else [None] * len(b)
        if len(outs) != len(b):
            raise Unsupported(f"the rule gave {len(b)} bounds for {len(outs)} outputs")
        return tuple(
            e if e is None or e is DISCRETE else _clean(e, o, input_shape)
            for e, o in zip(b, outs, strict=True)
        )
    if isinstance(b, Affine):
        if not (math.isfinite(b.alpha) and math.isfinite(b.lip)) or b.lip < 0:
            raise Unsupported(f"non-finite bound {b}")
        if not (isinstance(out, torch.Tensor) and tuple(out.shape) == input_shape):
            return Affine(0.0, b.total)
        return b
    v = float(b)
    if not math.isfinite(v) or v < 0:
        raise Unsupported(f"non-finite bound {v}")
    return Affine(0.0, v)


@dataclass
class _Walk:
    """The state of one propagation: per node, whether it depends on x, its bound (None: unbounded)
    and its problem; the layers bounded so far; `state`: shared by the rules of one propagation."""

    values: dict[torch.fx.Node, Any]
    mode: str
    input_shape: tuple[int, ...]
    dep: dict[torch.fx.Node, bool] = field(default_factory=dict)
    rand: dict[torch.fx.Node, str] = field(default_factory=dict)
    bounds: dict[torch.fx.Node, Any] = field(default_factory=dict)
    problems: dict[torch.fx.Node, Problem] = field(default_factory=dict)
    layers: list[LayerBound] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


def _visit(w: _Walk, g: LoweredGraph, n: torch.fx.Node) -> None:
    """Record whether node n depends on x (and on a random draw) and, when it depends on x and its
    inputs are bounded, bound it."""
    drawn = random_op(n)
    src = drawn or next((w.rand[a] for a in n.all_input_nodes if a in w.rand), None)
    if src is not None:
        w.rand[n] = src
    if n.op == "placeholder":
        w.dep[n] = n is g.x_node
        if w.dep[n]:
            w.bounds[n] = Affine(1.0, 0.0)
        return
    if n.op in ("get_attr", "output"):
        w.dep[n] = False
        return
    ins = [a for a in n.all_input_nodes if w.dep.get(a, False)]
    w.dep[n] = bool(ins)
    if not ins:
        return
    if any(w.bounds.get(a) is None for a in ins):
        w.bounds[n] = None
        return
    if drawn is not None:
        w.problems[n] = Problem(drawn, n.name, "a random draw: its value is not a function of the input")
        w.bounds[n] = None
        return
    _apply_rule(w, n, ins)


def _check_arguments(ctx: OpContext, entry: RuleEntry) -> None:
    """Refuse the node (Unsupported, naming the argument) when an argument the rule did not declare
    as a Lipschitz input varies with x (`OpContext.is_fixed`: a certified bound of 0 is a constant),
    or an argument that does not depend on x is a random draw."""
    for name, raw in ctx.arguments():
        nodes = raw if isinstance(raw, (list, tuple)) else [raw]
        for a in nodes:
            if not isinstance(a, torch.fx.Node):
                continue
            if ctx.depends(a):
                if not entry.may_carry_x(name) and not ctx.is_fixed(a):
                    declared = ", ".join(repr(d) for d in entry.lipschitz_args)
                    raise Unsupported(
                        f"{ctx.op}: argument {name!r} depends on the input (the rule takes only "
                        f"{declared} from it and {name!r} as a constant)"
                    )
            elif ctx.random_source(a) is not None:
                raise Unsupported(
                    f"{ctx.op}: argument {name!r} is a random draw ({ctx.random_source(a)}), not a constant"
                )


def _apply_rule(w: _Walk, n: torch.fx.Node, ins: list[torch.fx.Node]) -> None:
    """Bound node n (whose x-dependent inputs `ins` are bounded) by its registered rule."""
    key = op_key(n.target)
    entry = get_rule(key) if n.op == "call_function" else None
    v = w.values.get(n)
    if entry is None:
        if isinstance(v, torch.Tensor) and not _is_float_tensor(v):
            w.problems[n] = Problem(key, n.name, "discrete (integer or boolean) values of the input", True)
        else:
            w.problems[n] = Problem(key, n.name, "no bound rule for this op")
        w.bounds[n] = None
        return
    ctx = OpContext(n, key, w.values, w.bounds, w.dep, w.mode, w.state, w.input_shape, w.rand)
    try:
        _check_arguments(ctx, entry)
        b = _clean(entry.fn(ctx), v, w.input_shape)
    except NonLipschitz as e:
        w.problems[n] = Problem(key, n.name, str(e), True)
        w.bounds[n] = None
        return
    except Unsupported as e:
        w.problems[n] = Problem(key, n.name, str(e))
        w.bounds[n] = None
        return
    except Exception as e:  # a rule meeting arguments it was not written for: no bound, never a crash
        text = str(e).strip().splitlines()
        w.problems[n] = Problem(key, n.name, f"rule failed: {text[0] if text else type(e).__name__}")
        w.bounds[n] = None
        return
    w.bounds[n] = b
    cum = _total(b)
    factor = None
    if len(ins) == 1 and cum is not None:
        li = _total(w.bounds.get(ins[0]))
        factor = cum / li if li else None
    shape = list(v.shape) if isinstance(v, torch.Tensor) else None
    w.layers.append(LayerBound(n.name, key, factor, cum, ctx.method, shape))


def _output(w: _Walk, g: LoweredGraph) -> Propagation:
    """The output's bound, with the problems of the nodes it depends on."""
    o = g.out_node
    ov = w.values.get(o)
    out_shape = tuple(ov.shape[1:]) if isinstance(ov, torch.Tensor) else None
    anc: set[torch.fx.Node] = set()
    stack = [o]
    while stack:
        m = stack.pop()
        if m in anc:
            continue
        anc.add(m)
        stack.extend(m.all_input_nodes)
    on_path = [p for node, p in w.problems.items() if node in anc]
    if o in w.rand:
        on_path.append(
            Problem(op_key(o.target), o.name, f"the output depends on a random draw ({w.rand[o]})")
        )
        return Propagation(None, out_shape, w.layers, on_path)
    if not w.dep.get(o, False):
        return Propagation(Affine(0.0, 0.0), out_shape, w.layers, on_path)
    b = w.bounds.get(o)
    if isinstance(b, tuple):
        on_path.append(Problem(op_key(o.target), o.name, "the output is a tuple"))
        b = None
    if b is not None and not _is_float_tensor(ov):
        on_path.append(Problem(op_key(o.target), o.name, "the output is not a floating-point tensor", True))
        b = None
    return Propagation(b, out_shape, w.layers, on_path)


def propagate(g: LoweredGraph, values: dict[torch.fx.Node, Any], mode: str) -> Propagation:
    """Bound every node of g (values: recorded node values on one example batch)."""
    x_val = values[g.x_node]
    w = _Walk(values, mode, tuple(x_val.shape))
    for n in g.gm.graph.nodes:
        _visit(w, g, n)
    return _output(w, g)


__all__ = ["RANDOM_OPS", "LayerBound", "Problem", "Propagation", "propagate", "random_op"]
