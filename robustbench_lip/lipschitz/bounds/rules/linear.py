"""Rules of the linear family: convolutions, matrix products, BatchNorm, sums, scalings, reductions.

Declared Lipschitz inputs (`lipschitz_args`): convolution, linear and eval BatchNorm take only their
input from x (a weight, bias or running statistic computed from x is refused by the registry); sums,
products and divisions declare every tensor argument and check which ones depend on x themselves.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from robustbench_lip.lipschitz.bounds.conv import conv2d_bound
from robustbench_lip.lipschitz.bounds.numerics import SAFETY, bn_scale, linear_bound, spectral_norm_dense
from robustbench_lip.lipschitz.bounds.rules.registry import (
    ANY_ARG,
    Affine,
    NonLipschitz,
    OpContext,
    Unsupported,
    broadcast_factor,
    named_args,
    register_rule,
)

FAMILY = "linear"
BN_EVAL = "aten._native_batch_norm_legit_no_training.default"


def _fold_scale(ctx: OpContext, channels: int) -> torch.Tensor | None:
    """The per-channel scale of an eval BatchNorm that is the only user of this node and normalises
    its channel axis 1 (which is the output-channel axis of a conv, or the feature axis of a 2-D
    linear output); marks the BatchNorm folded. None when the pattern does not hold exactly."""
    users = list(ctx.node.users)
    if len(users) != 1:
        return None
    bn = users[0]
    if str(bn.target) != BN_EVAL or not bn.args or bn.args[0] is not ctx.node:
        return None
    named = named_args(bn)  # by schema name: eps may be a keyword (a default eps would be unsound)
    weight, var, eps = named["weight"], named["running_var"], float(named["eps"])
    if any(ctx.depends(a) for a in (weight, var) if a is not None):
        return None
    rv = ctx.value(var)
    w = ctx.value(weight) if weight is not None else None
    if not isinstance(rv, torch.Tensor) or rv.numel() != channels:
        return None
    out = ctx.out
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[1] != channels:
        return None
    ctx.state.setdefault("folded", set()).add(bn)
    return bn_scale(rv, w, eps)


def convolution(ctx: OpContext) -> float:
    """Conv (1-d, 2-d; transposed): certified operator norm at the input's size (see conv2d_bound).
    An eval BatchNorm right after a non-transposed conv is folded into its weight. Weight and bias
    are constants (declared)."""
    x = ctx.arg("input")
    w = ctx.arg("weight").detach().to(torch.float64)
    stride, padding, dilation = list(ctx.arg("stride")), list(ctx.arg("padding")), list(ctx.arg("dilation"))
    transposed, groups = bool(ctx.arg("transposed")), int(ctx.arg("groups"))
    if w.dim() == 3:  # conv1d as a conv2d over a height-1 image
        w = w.unsqueeze(2)
        stride, padding, dilation = [1, *stride], [0, *padding], [1, *dilation]
        x = x.unsqueeze(2)
    if w.dim() != 4 or x.dim() != 4:
        raise Unsupported(f"convolution with a {w.dim()}-d weight (only 1-d and 2-d convolutions)")
    note = ""
    if transposed:
        out = ctx.out if ctx.out.dim() == 4 else ctx.out.unsqueeze(2)
        hw = tuple(out.shape[-2:])  # the adjoint conv acts on the output grid
    else:
        hw = tuple(x.shape[-2:])
        scale = _fold_scale(ctx, w.shape[0])
        if scale is not None:
            w = w * scale.view(-1, 1, 1, 1).to(w)
            note = " (BatchNorm folded)"
    b, method = conv2d_bound(w, hw, stride, padding, dilation, groups, "zeros", ctx.mode)  # type: ignore[arg-type]
    ctx.note(("transposed " if transposed else "") + method + note)
    return b * ctx.lip("input")


@register_rule("aten.linear.default", family=FAMILY, lipschitz_args=("input",))
def linear(ctx: OpContext) -> float:
    """x Wᵀ + b on the last axis: ‖W‖₂ (exact σ_max); a following BatchNorm1d is folded when the
    output is 2-d (features on axis 1). Weight and bias are constants (declared)."""
    w = ctx.arg("weight").detach().to(torch.float64)
    if w.dim() == 1:
        w = w.view(1, -1)
    note = ""
    if ctx.out.dim() == 2:
        scale = _fold_scale(ctx, w.shape[0])
        if scale is not None:
            w = w * scale.view(-1, 1).to(w)
            note = " (BatchNorm folded)"
    ctx.note("exact-svd" + note)
    return linear_bound(w) * ctx.lip("input")


def _matrix_norm_of(c: Any) -> float:
    if not isinstance(c, torch.Tensor):
        raise Unsupported("matrix product with a non-tensor")
    if c.dim() == 1:
        c = c.view(1, -1)
    return SAFETY * spectral_norm_dense(c.detach())


@register_rule("aten.mm.default", "aten.bmm.default", family=FAMILY, lipschitz_args=ANY_ARG)
def mm(ctx: OpContext) -> float:
    """A @ B with one factor constant: the constant's σ_max (max over a batch) times the other's bound."""
    a_dep, b_dep = ctx.depends("self"), ctx.depends("mat2")
    if a_dep and b_dep:
        raise NonLipschitz("product of two input-dependent tensors is not globally Lipschitz")
    var, const = ("self", "mat2") if a_dep else ("mat2", "self")
    ctx.note("exact-svd")
    return _matrix_norm_of(ctx.arg(const)) * ctx.lip(var)


@register_rule("aten.addmm.default", family=FAMILY, lipschitz_args=("self", "mat1", "mat2"))
def addmm(ctx: OpContext) -> float:
    """beta·self + alpha·(m1 @ m2) with one of m1, m2 constant: |alpha|·σ_max(const)·L(var) plus
    |beta|·√k·L(self) for a self broadcast k times (self may depend on x)."""
    a_dep, b_dep = ctx.depends("mat1"), ctx.depends("mat2")
    if a_dep and b_dep:
        raise NonLipschitz("product of two input-dependent tensors is not globally Lipschitz")
    prod = 0.0
    if a_dep or b_dep:
        var, const = ("mat1", "mat2") if a_dep else ("mat2", "mat1")
        prod = abs(float(ctx.arg("alpha"))) * _matrix_norm_of(ctx.arg(const)) * ctx.lip(var)
    bias = 0.0
    if ctx.depends("self"):
        bias = abs(float(ctx.arg("beta"))) * ctx.lip("self") * broadcast_factor(ctx.arg("self"), ctx.out)
    ctx.note("exact-svd")
    return prod + bias


def _bn_outputs(ctx: OpContext, first: float) -> tuple[float, ...]:
    """One bound per output of an eval BatchNorm: the normalised tensor, then save_mean / save_invstd
    (empty in eval) and, for the functional variant, the running statistics returned unchanged:
    constants, bound 0."""
    n = len(ctx.out) if isinstance(ctx.out, (tuple, list)) else 1
    return (first,) + (0.0,) * (n - 1)


def _bn_scale_max(ctx: OpContext) -> float:
    s = bn_scale(ctx.arg("running_var"), ctx.arg("weight"), float(ctx.arg("eps")))
    if not bool(torch.isfinite(s).all()):
        raise Unsupported("BatchNorm with running_var + eps ≤ 0 or non-finite parameters")
    return float(s.abs().max()) * SAFETY if s.numel() else 0.0


@register_rule(BN_EVAL, family=FAMILY, lipschitz_args=("input",))
def batch_norm_eval(ctx: OpContext) -> tuple[float, ...]:
    """Eval BatchNorm: per-channel scaling, max|γ|/√(var+ε) (1 when folded into its producer);
    weight, bias, running_mean and running_var are constants (declared)."""
    if ctx.node in ctx.state.get("folded", set()):
        ctx.note("folded into its producer")
        return _bn_outputs(ctx, ctx.lip("input"))
    s = _bn_scale_max(ctx)
    ctx.note("max|γ|/√(var+ε)")
    return _bn_outputs(ctx, s * ctx.lip("input"))


@register_rule(
    "aten._native_batch_norm_legit_functional.default",
    "aten._native_batch_norm_legit.default",
    "aten.native_batch_norm.default",
    family=FAMILY,
    lipschitz_args=("input",),
)
def batch_norm_train(ctx: OpContext) -> Any:
    """BatchNorm with batch statistics: a sample's output depends on the whole batch. With
    training=False and running statistics it is the eval BatchNorm."""
    if ctx.arg("training") is False and ctx.arg("running_var") is not None:
        s = _bn_scale_max(ctx)
        ctx.note("max|γ|/√(var+ε)")
        return _bn_outputs(ctx, s * ctx.lip("input"))
    raise Unsupported(
        "BatchNorm uses batch statistics (the model was exported in train mode); re-export it in eval mode"
    )


def _alpha_of(ctx: OpContext) -> float:
    a = ctx.arg("alpha")
    return 1.0 if a is None else float(a)


def _combine(ctx: OpContext, a: str, b: str, coef: float) -> Affine | float:
    """Bound of a + coef·b (either may depend on x, each broadcast to the output's shape)."""
    if not math.isfinite(coef):
        raise Unsupported(f"{ctx.op} with a non-finite alpha")
    da, db = ctx.depends(a), ctx.depends(b)
    ba = ctx.bound(a) if da else Affine(0.0, 0.0)
    bb = ctx.bound(b) if db else Affine(0.0, 0.0)
    out = ctx.out
    same = (not da or ctx.aligned(a)) and (not db or ctx.aligned(b)) and ctx.aligned(ctx.node)
    ctx.note("sum")
    if same:
        return Affine(ba.alpha + coef * bb.alpha, ba.lip + abs(coef) * bb.lip)
    la = ba.total * broadcast_factor(ctx.arg(a), out) if da else 0.0
    lb = abs(coef) * bb.total * broadcast_factor(ctx.arg(b), out) if db else 0.0
    return la + lb


def add(ctx: OpContext) -> Affine | float:
    """a + alpha·b: bounds add (the identity coefficients too, for tensors of x's shape)."""
    return _combine(ctx, "self", "other", _alpha_of(ctx))


def sub(ctx: OpContext) -> Affine | float:
    """a − alpha·b (registered for aten.sub in `constrained`, which delegates here)."""
    return _combine(ctx, "self", "other", -_alpha_of(ctx))


@register_rule("aten.rsub.Scalar", "aten.rsub.Tensor", family=FAMILY, lipschitz_args=ANY_ARG)
def rsub(ctx: OpContext) -> Affine | float:
    """other − alpha·self, where `other` may depend on x too."""
    return _combine(ctx, "other", "self", -_alpha_of(ctx))


def _abs_max(c: Any) -> float:
    if isinstance(c, torch.Tensor):
        return float(c.detach().abs().max()) if c.numel() else 0.0
    return abs(float(c))


def _scalar_of(c: Any) -> float | None:
    if isinstance(c, torch.Tensor):
        return float(c) if c.numel() == 1 else None
    return float(c)


@register_rule("aten.mul.Tensor", "aten.mul.Scalar", family=FAMILY, lipschitz_args=ANY_ARG)
def mul(ctx: OpContext) -> Affine | float:
    """x·c with c constant: |c| (max|c| for tensors, times the broadcast factor of x)."""
    da, db = ctx.depends("self"), ctx.depends("other")
    if da and db:
        raise NonLipschitz("product of two input-dependent tensors is not globally Lipschitz")
    var, const = ("self", "other") if da else ("other", "self")
    c = ctx.arg(const)
    b = ctx.bound(var)
    cs = _scalar_of(c)
    if cs is not None and ctx.aligned(var) and ctx.aligned(ctx.node):
        ctx.note(f"scale {cs:.6g}")
        return Affine(cs * b.alpha, abs(cs) * b.lip)
    ctx.note("scale max|c|")
    return _abs_max(c) * b.total * broadcast_factor(ctx.arg(var), ctx.out)


@register_rule("aten.div.Tensor", "aten.div.Scalar", family=FAMILY, lipschitz_args=ANY_ARG)
def div(ctx: OpContext) -> Affine | float:
    """x / c with c constant and non-zero: 1/min|c|."""
    if ctx.depends("other"):
        raise NonLipschitz("division by an input-dependent tensor is not globally Lipschitz")
    c = ctx.arg("other")
    m = float(c.detach().abs().min()) if isinstance(c, torch.Tensor) else abs(float(c))
    if not m > 0:
        raise NonLipschitz("division by zero")
    b = ctx.bound("self")
    cs = _scalar_of(c)
    if cs is not None and ctx.aligned("self") and ctx.aligned(ctx.node):
        ctx.note(f"scale 1/{cs:.6g}")
        return Affine(b.alpha / cs, b.lip / abs(cs))
    ctx.note("scale 1/min|c|")
    return b.total / m * broadcast_factor(ctx.arg("self"), ctx.out)


@register_rule("aten.div.Tensor_mode", family=FAMILY, lipschitz_args=ANY_ARG)
def div_mode(ctx: OpContext) -> float:
    """Division with rounding ('floor' / 'trunc') is not Lipschitz; without a mode it is div."""
    if ctx.arg("rounding_mode") is not None:
        raise NonLipschitz(f"rounding division ({ctx.arg('rounding_mode')}) is not Lipschitz")
    return div(ctx)  # type: ignore[return-value]


@register_rule("aten.neg.default", family=FAMILY, lipschitz_args=("self",))
def neg(ctx: OpContext) -> Affine:
    """−x."""
    b = ctx.bound("self")
    return Affine(-b.alpha, b.lip)


def _reduced_count(ctx: OpContext) -> float:
    vin, vout = ctx.arg("self"), ctx.out
    return vin.numel() / max(1, vout.numel())


@register_rule("aten.sum.dim_IntList", "aten.sum.default", family=FAMILY, lipschitz_args=("self",))
def sum_(ctx: OpContext) -> float:
    """Sum over n entries: √n."""
    n = _reduced_count(ctx)
    ctx.note(f"sum over {round(n)}")
    return math.sqrt(n) * ctx.lip("self")


@register_rule("aten.mean.dim", "aten.mean.default", family=FAMILY, lipschitz_args=("self",))
def mean(ctx: OpContext) -> float:
    """Mean over n entries: 1/√n."""
    n = _reduced_count(ctx)
    ctx.note(f"mean over {round(n)}")
    return ctx.lip("self") / math.sqrt(n)
