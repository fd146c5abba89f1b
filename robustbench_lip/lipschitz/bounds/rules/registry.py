"""The rule registry: one bound rule per ATen op overload, registered by name.

A rule receives an `OpContext` (the node's arguments, their recorded values, the bounds of the
input-dependent ones) and returns the bound of the node's output: a float L (‖Δout‖ ≤ L‖δx‖), an
`Affine` (out = α·x + g(x) with Lip(g) ≤ lip, for nodes of the input's own shape), or a tuple of
those for ops with several outputs. A rule that cannot bound a case raises `Unsupported(reason)`;
an op that is not Lipschitz at all raises `NonLipschitz(reason)`. Rules never assume what they
cannot check (axes of a fold, whether an argument depends on x).

Registering a rule for an op also keeps that op whole when the graph is decomposed to core ATen,
so a composite op with an exact constant (SiLU, bilinear upsampling) is bounded as one op:

    from robustbench_lip.lipschitz.bounds import register_rule

    @register_rule("mylib.scaled_tanh.default")
    def _scaled_tanh(ctx):
        return abs(float(ctx.arg("scale"))) * ctx.lip("x")
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


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


@dataclass
class RuleEntry:
    """A registered rule: the op key ('aten.convolution.default'), the function, its family, and the
    names of the arguments that may depend on the input x (`lipschitz_args`; ANY_ARG: all of them)."""

    op: str
    fn: Rule
    family: str
    lipschitz_args: tuple[str, ...] | str | None = None


_RULES: dict[str, RuleEntry] = {}


def op_key(target: Any) -> str:
    """The registry key of an fx node target: 'aten.relu.default', 'getitem', 'mylib.op.default'."""
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    if target is __import__("operator").getitem:
        return "getitem"
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", str(target))


def register_rule(
    *ops: str,
    family: str = "user",
    lipschitz_args: tuple[str, ...] | str | None = None,
    replace: bool = False,
) -> Callable[[Rule], Rule]:
    """Decorator: register fn as the bound rule of each op key (e.g. 'aten.relu.default').

    lipschitz_args: the schema names of the arguments that may carry x (e.g. ("input",)), or
    ANY_ARG when every tensor argument may. replace: overriding an existing rule must be explicit.
    """
    if not ops:
        raise ValueError("register_rule needs at least one op name")
    if isinstance(lipschitz_args, str) and lipschitz_args != ANY_ARG:
        lipschitz_args = (lipschitz_args,)

    def deco(fn: Rule) -> Rule:
        for op in ops:
            _RULES[op] = RuleEntry(op, fn, family, lipschitz_args)
        return fn

    return deco


def unregister_rule(op: str) -> None:
    """Remove the rule of op (no error when there is none)."""
    _RULES.pop(op, None)


def get_rule(op: str) -> RuleEntry | None:
    """The rule registered for op key, or None."""
    return _RULES.get(op)


def registered_ops(family: str | None = None) -> list[str]:
    """Sorted op keys with a rule (of one family: linear, activations, spatial, structural,
    nonlipschitz, user)."""
    return sorted(k for k, e in _RULES.items() if family is None or e.family == family)


@dataclass
class OpContext:
    """What a rule sees of one graph node.

    node: the fx node; op: its key; values: recorded value of every node; bounds: Bound of every
    input-dependent node; depends: node → depends on x; mode: "fast" | "tight"; state: scratch
    shared by rules over one graph (e.g. BatchNorm nodes folded into their producer).
    """

    node: torch.fx.Node
    op: str
    values: dict[torch.fx.Node, Any]
    bounds: dict[torch.fx.Node, Any]
    dep: dict[torch.fx.Node, bool]
    mode: str
    state: dict[str, Any]
    input_shape: tuple[int, ...]
    method: str = ""
    _named: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.node.target
        args, kwargs = list(self.node.args), dict(self.node.kwargs)
        if isinstance(t, torch._ops.OpOverload):
            for i, a in enumerate(t._schema.arguments):
                if i < len(args):
                    self._named[a.name] = args[i]
                elif a.name in kwargs:
                    self._named[a.name] = kwargs[a.name]
                elif a.has_default_value():
                    self._named[a.name] = a.default_value
                else:
                    self._named[a.name] = None
        else:
            for i, a in enumerate(args):
                self._named[str(i)] = a
            self._named.update(kwargs)

    # --- arguments ---------------------------------------------------------------------------
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
    "Affine",
    "Bound",
    "NonLipschitz",
    "OpContext",
    "RuleEntry",
    "Unsupported",
    "broadcast_factor",
    "get_rule",
    "op_key",
    "register_rule",
    "registered_ops",
    "unregister_rule",
]
