"""The rule registry: one bound rule per ATen op overload, registered by name.

A rule receives an `OpContext` (the node's arguments, their recorded values, the bounds of the
input-dependent ones) and returns the bound of the node's output: a float L (‖Δout‖ ≤ L‖δx‖), an
`Affine` (out = α·x + g(x) with Lip(g) ≤ lip, for nodes of the input's own shape), or a tuple of
those for ops with several outputs. A rule that cannot bound a case raises `Unsupported(reason)`;
an op that is not Lipschitz at all raises `NonLipschitz(reason)`. Rules never assume what they
cannot check (axes of a fold, whether an argument depends on x).

Every rule declares `lipschitz_args`: the schema names of the arguments that may carry x (ANY_ARG:
all of them). Before a rule runs, `propagate` refuses the node when any other tensor argument depends
on x, and when any argument that does not depend on x comes from a random draw (a rule would read it
as a constant). Registering an op twice is an error unless `replace=True`.

Registering a rule for an op also keeps that op whole when the graph is decomposed to core ATen,
so a composite op with an exact constant (SiLU, bilinear upsampling) is bounded as one op:

    from robustbench_lip.lipschitz.bounds import register_rule

    @register_rule("mylib.scaled_tanh.default", lipschitz_args=("x",))
    def _scaled_tanh(ctx):
        return abs(float(ctx.arg("scale"))) * ctx.lip("x")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from robustbench_lip.registry import DuplicateName, Registry


class Unsupported(Exception):
    """The rule cannot bound this node; the message says why (the bound becomes null)."""


class NonLipschitz(Unsupported):
    """The op is not Lipschitz (casts to lower precision, rounding, .item(), sign, dtype views)."""


@dataclass(frozen=True)
class Affine:
    """out = alpha·x + g(x) with Lip(g) ≤ lip (alpha only for nodes of exactly the input's shape)."""

    alpha: float
    lip: float

    @property
    def total(self) -> float:
        """Certified bound on the node's Lipschitz constant: |alpha| + lip."""
        return abs(self.alpha) + self.lip


Bound = float | Affine | tuple[Any, ...]
Rule = Callable[["OpContext"], Bound]


ANY_ARG = "*"
"""`lipschitz_args=ANY_ARG`: every tensor argument of the op may carry x (add, cat, where, …)."""

DISCRETE = "discrete"
"""An entry of a multi-output rule's tuple for an output that takes discrete values (indices of
max / sort / pooling): whoever reads it gets NonLipschitz."""


@dataclass
class RuleEntry:
    """A registered rule: the op key ('aten.convolution.default'), the function, its family, and the
    names of the arguments that may depend on the input x (`lipschitz_args`; ANY_ARG: all of them)."""

    op: str
    fn: Rule
    family: str
    lipschitz_args: tuple[str, ...] | str

    def may_carry_x(self, name: str) -> bool:
        """Whether the rule declares that argument `name` may depend on x."""
        return self.lipschitz_args == ANY_ARG or name in self.lipschitz_args


RULES: Registry[RuleEntry] = Registry("bound rule")


def op_key(target: Any) -> str:
    """The registry key of an fx node target: 'aten.relu.default', 'getitem', 'mylib.op.default'."""
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    if target is __import__("operator").getitem:
        return "getitem"
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", str(target))


def opname(n: Any) -> str:
    """The op key of a call_function node ('' for anything else, e.g. a constant or a placeholder)."""
    return str(n.target) if isinstance(n, torch.fx.Node) and n.op == "call_function" else ""


def _declared(ops: tuple[str, ...], lipschitz_args: Any) -> tuple[str, ...] | str:
    """lipschitz_args checked: ANY_ARG, or a non-empty tuple of argument names (a name alone: (name,))."""
    if lipschitz_args is None:
        raise TypeError(
            f"register_rule({', '.join(ops)}): lipschitz_args is required: the names of the arguments "
            "that may carry the input x (e.g. ('input',)), or ANY_ARG"
        )
    if lipschitz_args == ANY_ARG:
        return ANY_ARG
    if isinstance(lipschitz_args, str):
        lipschitz_args = (lipschitz_args,)
    names = tuple(lipschitz_args) if isinstance(lipschitz_args, (tuple, list)) else ()
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            f"register_rule({', '.join(ops)}): lipschitz_args must be ANY_ARG or a non-empty tuple of "
            f"argument names, not {lipschitz_args!r}"
        )
    return names


def register_rule(
    *ops: str,
    family: str = "user",
    lipschitz_args: tuple[str, ...] | str | None = None,
    replace: bool = False,
) -> Callable[[Rule], Rule]:
    """Decorator: register fn as the bound rule of each op key (e.g. 'aten.relu.default').

    lipschitz_args (required): the schema names of the arguments that may carry x (e.g. ("input",)),
    or ANY_ARG when every tensor argument may; any other argument that depends on x makes the node
    Unsupported before the rule runs. replace: overriding an existing rule must be explicit.
    Raises TypeError without lipschitz_args, ValueError for an op that already has a rule.
    """
    if not ops:
        raise ValueError("register_rule needs at least one op name")
    names = _declared(ops, lipschitz_args)
    if len(set(ops)) != len(ops):
        raise ValueError(f"register_rule: an op is listed twice in {ops}")
    if not replace:
        taken = [f"{op} (family {RULES.get(op).family})" for op in ops if op in RULES]
        if taken:
            raise DuplicateName(
                f"a rule is already registered for {', '.join(taken)}; pass replace=True to override it"
            )

    def deco(fn: Rule) -> Rule:
        for op in ops:
            RULES.register(op, RuleEntry(op, fn, family, names), replace=True)  # checked above
        return fn

    return deco


def unregister_rule(op: str) -> None:
    """Remove the rule of op (no error when there is none)."""
    RULES.unregister(op)


def get_rule(op: str) -> RuleEntry | None:
    """The rule registered for op key, or None."""
    return RULES.find(op)


def registered_ops(family: str | None = None) -> list[str]:
    """Sorted op keys with a rule (of one family: linear, activations, spatial, structural,
    nonlipschitz, user)."""
    return sorted(k for k, e in RULES.items() if family is None or e.family == family)


def named_args(node: torch.fx.Node) -> dict[str, Any]:
    """A node's arguments by schema name (defaults filled in); by position ('0', '1', …) for targets
    without a schema (getitem)."""
    t = node.target
    args, kwargs = list(node.args), dict(node.kwargs)
    named: dict[str, Any] = {}
    if isinstance(t, torch._ops.OpOverload):
        for i, a in enumerate(t._schema.arguments):
            if i < len(args):
                named[a.name] = args[i]
            elif a.name in kwargs:
                named[a.name] = kwargs[a.name]
            else:
                named[a.name] = a.default_value if a.has_default_value() else None
        return named
    for i, a in enumerate(args):
        named[str(i)] = a
    named.update(kwargs)
    return named


@dataclass
class OpContext:
    """What a rule sees of one graph node.

    node: the fx node; op: its key; values: recorded value of every node; bounds: Bound of every
    input-dependent node; depends: node → depends on x; mode: "fast" | "tight"; state: scratch
    shared by rules over one graph (e.g. BatchNorm nodes folded into their producer); rand: node →
    the random op it comes from, for every node computed from a random draw (propagate's taint).
    """

    node: torch.fx.Node
    op: str
    values: dict[torch.fx.Node, Any]
    bounds: dict[torch.fx.Node, Any]
    dep: dict[torch.fx.Node, bool]
    mode: str
    state: dict[str, Any]
    input_shape: tuple[int, ...]
    rand: dict[torch.fx.Node, str] = field(default_factory=dict)
    method: str = ""
    _named: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._named = named_args(self.node)

    # --- arguments ---------------------------------------------------------------------------
    def arguments(self) -> list[tuple[str, Any]]:
        """Every argument as (schema name, raw value): fx nodes, constants, lists of them."""
        return list(self._named.items())

    def raw(self, name: str | int) -> Any:
        """The argument as written in the graph (an fx node or a constant); by schema name or index."""
        if isinstance(name, int):
            return self.node.args[name] if name < len(self.node.args) else None
        if name not in self._named:
            raise Unsupported(f"{self.op}: no argument {name!r}")
        return self._named[name]

    def arg(self, name: str | int) -> Any:
        """The argument's concrete value (a recorded tensor, a number, a list …)."""
        return self.value(self.raw(name))

    def value(self, a: Any) -> Any:
        """The recorded value of a node (lists and tuples elementwise); constants as they are."""
        if isinstance(a, torch.fx.Node):
            return self.values.get(a)
        if isinstance(a, (list, tuple)):
            return type(a)(self.value(v) for v in a)
        return a

    def depends(self, name_or_node: Any) -> bool:
        """Whether an argument (name, index or node; lists: any element) depends on the input x."""
        a = self.raw(name_or_node) if isinstance(name_or_node, (str, int)) else name_or_node
        if isinstance(a, torch.fx.Node):
            return self.dep.get(a, False)
        if isinstance(a, (list, tuple)):
            return any(self.depends(v) for v in a if isinstance(v, torch.fx.Node))
        return False

    def bound(self, name_or_node: Any) -> Affine:
        """The bound of an argument as Affine (constants: Affine(0, 0))."""
        a = self.raw(name_or_node) if isinstance(name_or_node, (str, int)) else name_or_node
        if not isinstance(a, torch.fx.Node) or not self.dep.get(a, False):
            return Affine(0.0, 0.0)
        b = self.bounds.get(a)
        if isinstance(b, tuple):
            raise Unsupported(f"{self.op}: a multi-output value used as a tensor")
        if b is None:
            raise Unsupported(f"{self.op}: input has no bound")
        return b if isinstance(b, Affine) else Affine(0.0, float(b))

    def random_source(self, a: Any) -> str | None:
        """The random op a node is computed from (None: none, or not a node)."""
        return self.rand.get(a) if isinstance(a, torch.fx.Node) else None

    def is_constant(self, a: Any) -> bool:
        """a (a node or a value) neither depends on x nor comes from a random draw."""
        return not self.depends(a) and self.random_source(a) is None

    def is_fixed(self, a: Any) -> bool:
        """a does not vary with x: a constant, or a node of x whose certified bound is 0 (a shape
        such as sym_size, x.new_ones(n), x·0), and no random draw."""
        if self.random_source(a) is not None:
            return False
        if not self.depends(a):
            return True
        b = self.bounds.get(a)
        if b is None or isinstance(b, tuple) or b is DISCRETE:
            return False
        return (b.total if isinstance(b, Affine) else float(b)) == 0.0

    def lip(self, name_or_node: Any) -> float:
        """Certified Lipschitz bound of an argument (0 for constants)."""
        return self.bound(name_or_node).total

    def const(self, name: str | int) -> Any:
        """An argument that must not depend on x (raises Unsupported if it does)."""
        if self.depends(name):
            raise Unsupported(f"{self.op}: argument {name!r} depends on the input")
        return self.arg(name)

    @property
    def out(self) -> Any:
        """The node's recorded output value."""
        return self.values.get(self.node)

    def aligned(self, name_or_node: Any) -> bool:
        """The argument is a tensor of exactly the input's shape (so its Affine alpha is meaningful)."""
        a = self.raw(name_or_node) if isinstance(name_or_node, (str, int)) else name_or_node
        v = self.value(a)
        return isinstance(v, torch.Tensor) and tuple(v.shape) == self.input_shape

    def note(self, method: str) -> None:
        """Record how the bound was obtained (shown in the per-layer table)."""
        self.method = method


def broadcast_factor(src: Any, out: Any) -> float:
    """√(numel(out) / numel(src)): the norm of broadcasting src to out's shape (each entry copied)."""
    if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor) and src.numel() > 0:
        return math.sqrt(max(1.0, out.numel() / src.numel()))
    return 1.0


__all__ = [
    "ANY_ARG",
    "DISCRETE",
    "Affine",
    "Bound",
    "NonLipschitz",
    "OpContext",
    "RuleEntry",
    "Unsupported",
    "broadcast_factor",
    "get_rule",
    "named_args",
    "op_key",
    "opname",
    "register_rule",
    "registered_ops",
    "unregister_rule",
]
