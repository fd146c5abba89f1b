"""The non-Lipschitz family: ops known to have no global Lipschitz constant on ℝ^d.

Their bound is null with the reason, so that a model using them is never called certified.
"""

from __future__ import annotations

from robustbench_lip.lipschitz.bounds.rules.registry import ANY_ARG, NonLipschitz, OpContext, register_rule

FAMILY = "nonlipschitz"

_REASONS: dict[str, tuple[str, ...]] = {
    "rounding is not Lipschitz (it jumps)": (
        "aten.round.default",
        "aten.round.decimals",
        "aten.floor.default",
        "aten.ceil.default",
        "aten.trunc.default",
        "aten.frac.default",
        "aten.remainder.Tensor",
        "aten.remainder.Scalar",
        "aten.fmod.Tensor",
        "aten.fmod.Scalar",
        "aten.floor_divide.default",
    ),
    "sign is not Lipschitz (it jumps at 0)": (
        "aten.sign.default",
        "aten.sgn.default",
        "aten.heaviside.default",
    ),
    ".item() turns a tensor into a Python number that the graph then treats as a constant": (
        "aten._local_scalar_dense.default",
    ),
    "reinterpreting the bits as another dtype is not Lipschitz": ("aten.view.dtype",),
    "comparisons and arg-max/min are discrete": (
        "aten.eq.Tensor",
        "aten.eq.Scalar",
        "aten.ne.Tensor",
        "aten.ne.Scalar",
        "aten.gt.Tensor",
        "aten.gt.Scalar",
        "aten.ge.Tensor",
        "aten.ge.Scalar",
        "aten.lt.Tensor",
        "aten.lt.Scalar",
        "aten.le.Tensor",
        "aten.le.Scalar",
        "aten.argmax.default",
        "aten.argmin.default",
    ),
    "not globally Lipschitz on ℝ^d (its slope is unbounded)": (
        "aten.exp.default",
        "aten.expm1.default",
        "aten.log.default",
        "aten.log1p.default",
        "aten.log2.default",
        "aten.sqrt.default",
        "aten.rsqrt.default",
        "aten.reciprocal.default",
        "aten.pow.Tensor_Scalar",
        "aten.pow.Tensor_Tensor",
        "aten.pow.Scalar",
        "aten.sinh.default",
        "aten.cosh.default",
        "aten.tan.default",
        "aten.asin.default",
        "aten.acos.default",
        "aten.var.correction",
        "aten.var.dim",
        "aten.std.correction",
        "aten.prod.default",
        "aten.prod.dim_int",
    ),
    "normalising by the input's own statistics is not globally Lipschitz (it divides by its std)": (
        "aten.native_layer_norm.default",
        "aten.native_group_norm.default",
        "aten._native_batch_norm_legit.no_stats",
    ),
}


def _make(reason: str):
    def rule(ctx: OpContext) -> float:
        raise NonLipschitz(f"{ctx.op}: {reason}")

    rule.__doc__ = f"Not Lipschitz: {reason}."
    return rule


for _reason, _ops in _REASONS.items():
    register_rule(*_ops, family=FAMILY, lipschitz_args=ANY_ARG)(_make(_reason))  # refuses whatever carries x
