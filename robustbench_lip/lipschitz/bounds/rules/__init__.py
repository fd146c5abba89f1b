"""Bound rules, one per ATen op, grouped by family; importing this package registers them all."""

from robustbench_lip.lipschitz.bounds.rules import activations, linear, nonlipschitz, spatial, structural  # noqa: F401
from robustbench_lip.lipschitz.bounds.rules.registry import (
    Affine,
    NonLipschitz,
    OpContext,
    Unsupported,
    get_rule,
    register_rule,
    registered_ops,
    unregister_rule,
)

__all__ = [
    "Affine",
    "NonLipschitz",
    "OpContext",
    "Unsupported",
    "get_rule",
    "register_rule",
    "registered_ops",
    "unregister_rule",
]
