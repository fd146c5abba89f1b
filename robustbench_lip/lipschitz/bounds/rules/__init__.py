"""Bound rules, one per ATen op, grouped by family; importing this package registers them all.

May import: lipschitz.bounds (OpContext, numerics) and registry only.
"""

from robustbench_lip.lipschitz.bounds.rules import (  # noqa: F401  (each op once: add/sub/cat/maximum/minimum in constrained, convolution in convpatterns)
    activations,
    constrained,
    convpatterns,
    l2pool,
    linear,
    nonlipschitz,
    spatial,
    structural,
)
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

__all__ = [
    "ANY_ARG",
    "DISCRETE",
    "Affine",
    "NonLipschitz",
    "OpContext",
    "Unsupported",
    "get_rule",
    "register_rule",
    "registered_ops",
    "unregister_rule",
]
