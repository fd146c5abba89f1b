"""Certified ℓ2 → ℓ2 upper bounds on the Lipschitz constant of a model at a fixed input shape.

`upper_bound(model, (C, H, W))` lowers the model to one core-ATen graph (`graph.lower`: torch.export,
then decomposition, keeping ops that have a rule whole), records every node's value on one example
to learn shapes and constants, and propagates a bound through it with one registered rule per op
(`rules/`: linear, activations, spatial, structural, nonlipschitz). An op without a rule, or one
that is not Lipschitz, makes the bound null, with the op and the reason named.

"Certified" means: for the real-valued function that the graph computes, ‖A(x) − A(y)‖₂ ≤ U·‖x − y‖₂
for every x, y of the given shape in all of ℝ^d (not only [0, 1]^d), in eval-mode semantics.
Floating-point rounding of the model's own forward pass is not part of that function.

May import: lipschitz.bounds itself, modelio (the freeze-weights hint), device, errors, registry;
never training, evaluations, report or cli.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds import rules as _rules  # noqa: F401  (registers the rules)
from robustbench_lip.lipschitz.bounds.conv import Mode, conv2d_bound
from robustbench_lip.lipschitz.bounds.graph import LoweredGraph, lower, record_values
from robustbench_lip.lipschitz.bounds.numerics import (
    SAFETY,
    bn_scale,
    linear_bound,
    separable_norm,
    spatial_linear_bound,
)
from robustbench_lip.lipschitz.bounds.propagate import LayerBound, Problem, Propagation, propagate
from robustbench_lip.lipschitz.bounds.rules.activations import GELU_LIP, SILU_LIP
from robustbench_lip.lipschitz.bounds.rules.registry import (
    ANY_ARG,
    DISCRETE,
    Affine,
    NonLipschitz,
    OpContext,
    Unsupported,
    get_rule,
    register_rule,
    registered_ops,
    unregister_rule,
)


@dataclass
class Lowered:
    """One lowering of a model: its core-ATen graph, the node values recorded on `example` (the
    batch the program was exported with) and the propagated bounds."""

    graph: LoweredGraph
    values: dict[Any, Any]
    prop: Propagation
    example: torch.Tensor


@dataclass
class UpperBound:
    """Certified upper bounds of a model at one input shape.

    upper: bound on L(A) (None when an op on the way to the output has no rule or is not
    Lipschitz); reflection: bound on L(R), R = 2A − I, from the identity coefficient α carried
    through the graph (|2α − 1| + 2·Lip(g) for A = α·x + g(x); None when the output shape differs
    from the input's); alpha: that coefficient; unsupported_ops: op keys without a bound on the
    way to the output; problems: each with its node and reason; layers: per-node breakdown.
    """

    upper: float | None
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    unsupported_ops: list[str]
    layers: list[LayerBound] = field(default_factory=list)
    mode: str = "fast"
    seconds: float = 0.0
    graph: str = "export-core-aten"
    reflection: float | None = None
    alpha: float | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def lowered(self) -> Lowered | None:
        """The graph, recorded values and propagation this bound came from (not a field: never
        serialised; None once released or for a bound built by hand). Reused by the head rule."""
        return self.__dict__.get("_lowered")

    def keep_lowered(self, lowered: Lowered | None) -> None:
        """Attach (or, with None, release) the lowered graph of this bound."""
        self.__dict__["_lowered"] = lowered

    def reflection_upper(self) -> float | None:
        """Certified bound on L(2A − I) (None when undefined or A is unbounded)."""
        return self.reflection

    @property
    def reasons(self) -> list[str]:
        """One line per problem: 'op (node): reason'."""
        return [f"{p.op} ({p.node}): {p.reason}" for p in self.problems]

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["problems"] = [p.to_dict() for p in self.problems]
        if not layers:
            d.pop("layers")
        return d


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in list(model.parameters()) + list(model.buffers()):
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def check_finite(model: nn.Module) -> None:
    """Raise RlipError naming the first parameter or buffer with a NaN or an infinity."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t.detach()).all()):
            raise RlipError(f"the model has non-finite values (NaN or inf) in {name}; refusing to certify it")


def _as_module(model: Any) -> nn.Module:
    if isinstance(model, torch.export.ExportedProgram):
        return model.module()
    if not isinstance(model, nn.Module):
        raise RlipError(
            f"cannot bound a {type(model).__name__}; expected an nn.Module or an exported program"
        )
    return model


def upper_bound(
    model: nn.Module | torch.export.ExportedProgram,
    input_shape: Sequence[int],
    mode: Mode = "fast",
    device: str | torch.device | None = None,
) -> UpperBound:
    """Certified ℓ2 Lipschitz upper bounds of x ↦ model(x) (first output) at inputs of shape
    input_shape (per sample, e.g. (C, H, W)), eval-mode semantics; the model's train flags and the
    global RNG are left as they were. Raises RlipError (one line) for a model that cannot be
    exported, has non-finite weights, or fails or returns non-finite values on such inputs."""
    from robustbench_lip.device import preserved_modes, preserved_rng, set_eval

    if mode not in ("fast", "tight"):
        raise RlipError(f"unknown bound mode {mode!r}; expected 'fast' or 'tight'")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise RlipError(f"bad input shape {shape}")
    t0 = time.perf_counter()
    net = _as_module(model)
    check_finite(net)
    dev = torch.device(device) if device is not None else _model_device(net)
    # a program exported with a fixed batch B (rlip's ForeignModel.batch) runs on B samples at once;
    # in eval mode the samples are independent, so the batch map has the per-sample constant
    batch = getattr(net, "batch", None) or 1
    example = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(0), dtype=_model_dtype(net))
    example = example.to(dev)
    with preserved_modes(net), preserved_rng():
        set_eval(net)
        g = lower(model if isinstance(model, torch.export.ExportedProgram) else net, example)
        values = record_values(g, example)
        out = values.get(g.out_node)
        if isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all()):
            raise RlipError(
                f"the model returns non-finite values on inputs of shape {shape}; refusing to certify it"
            )
        prop = propagate(g, values, mode)
    b = prop.out
    upper = refl = alpha = None
    if b is not None:
        upper = float(b.total)
        alpha = float(b.alpha)
        if prop.out_shape == shape:
            refl = abs(2 * b.alpha - 1) + 2 * b.lip
    for v in (upper, refl):
        if v is not None and not math.isfinite(v):
            upper = refl = None
            prop.problems.append(Problem("output", g.out_node.name, "the bound is not finite"))
            break
    ub = UpperBound(
        upper=upper,
        input_shape=shape,
        output_shape=prop.out_shape,
        unsupported_ops=sorted({p.op for p in prop.problems}),
        layers=prop.layers,
        mode=mode,
        seconds=time.perf_counter() - t0,
        reflection=refl,
        alpha=alpha,
        problems=prop.problems,
    )
    ub.keep_lowered(Lowered(g, values, prop, example))
    return ub


__all__ = [
    "ANY_ARG",
    "DISCRETE",
    "GELU_LIP",
    "SAFETY",
    "SILU_LIP",
    "Affine",
    "LayerBound",
    "Lowered",
    "Mode",
    "NonLipschitz",
    "OpContext",
    "Problem",
    "Unsupported",
    "UpperBound",
    "bn_scale",
    "check_finite",
    "conv2d_bound",
    "get_rule",
    "linear_bound",
    "register_rule",
    "registered_ops",
    "separable_norm",
    "spatial_linear_bound",
    "unregister_rule",
    "upper_bound",
]
