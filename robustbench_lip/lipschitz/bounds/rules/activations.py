"""Rules of the activation family: elementwise maps by their Lipschitz constants (sup |f'|)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from robustbench_lip.lipschitz.bounds.rules.registry import (
    OpContext,
    Unsupported,
    broadcast_factor,
    register_rule,
)

FAMILY = "activations"


def _gelu_constant() -> float:
    # d/dx xΦ(x) = Φ(x) + xφ(x); its maximum is at x = √2 (second derivative φ(x)(2 − x²)).
    r2 = math.sqrt(2.0)
    phi = math.exp(-1.0) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + math.erf(1.0)) + r2 * phi


def _grid_max_abs_derivative(fn: Callable[[torch.Tensor], torch.Tensor], lo: float, hi: float) -> float:
    """max |f'| on a 1e-4 grid over [lo, hi] plus a margin covering the grid error (|f''| ≤ 1 for the
    functions used here); outside [lo, hi] their derivatives are within 1e-6 of their limits 0 and 1."""
    step = 1e-4
    x = torch.arange(lo, hi + step, step, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return float(g.abs().max()) + step


GELU_LIP = _gelu_constant() * (1 + 1e-12)  # ≈ 1.1289
GELU_TANH_LIP = _grid_max_abs_derivative(lambda x: F.gelu(x, approximate="tanh"), -20, 20)
SILU_LIP = _grid_max_abs_derivative(F.silu, -40, 40)  # ≈ 1.0998
MISH_LIP = _grid_max_abs_derivative(F.mish, -40, 40)  # ≈ 1.089


def _const(k: float, what: str) -> Callable[[OpContext], float]:
    def rule(ctx: OpContext) -> float:
        ctx.note(f"{what} ×{k:.6g}")
        return k * ctx.lip("self")

    rule.__doc__ = f"{what}: Lipschitz constant {k:.6g}."
    return rule


for _ops, _k, _what in [
    (("aten.relu.default",), 1.0, "relu"),
    (("aten.tanh.default",), 1.0, "tanh"),
    (("aten.sigmoid.default",), 0.25, "sigmoid"),
    (("aten.hardsigmoid.default",), 1.0 / 6.0, "hardsigmoid"),
    (("aten.hardswish.default",), 1.5, "hardswish"),
    (("aten.silu.default",), SILU_LIP, "silu"),
    (("aten.mish.default",), MISH_LIP, "mish"),
    (("aten.softplus.default",), 1.0, "softplus"),
    (("aten.abs.default",), 1.0, "abs"),
    (("aten.sin.default", "aten.cos.default"), 1.0, "sin/cos"),
    (("aten.atan.default",), 1.0, "atan"),
    (("aten.erf.default",), 2.0 / math.sqrt(math.pi), "erf"),
    (("aten._softmax.default", "aten._safe_softmax.default"), 1.0, "softmax"),
]:
    register_rule(*_ops, family=FAMILY)(_const(_k, _what))


@register_rule("aten.gelu.default", family=FAMILY)
def gelu(ctx: OpContext) -> float:
    """GELU: Φ(√2) + √2·φ(√2) ≈ 1.1289 (exact erf form); tanh approximation by a fine grid."""
    k = GELU_TANH_LIP if ctx.arg("approximate") == "tanh" else GELU_LIP
    ctx.note(f"gelu ×{k:.6g}")
    return k * ctx.lip("self")


@register_rule("aten.leaky_relu.default", family=FAMILY)
def leaky_relu(ctx: OpContext) -> float:
    """LeakyReLU: max(1, |slope|)."""
    k = max(1.0, abs(float(ctx.arg("negative_slope"))))
    ctx.note(f"leaky_relu ×{k:.6g}")
    return k * ctx.lip("self")


@register_rule("aten._prelu_kernel.default", family=FAMILY)
def prelu(ctx: OpContext) -> float:
    """PReLU with a constant weight: max(1, max|w|)."""
    k = max(1.0, float(ctx.const("weight").detach().abs().max()))
    ctx.note(f"prelu ×{k:.6g}")
    return k * ctx.lip("self")


@register_rule("aten.elu.default", family=FAMILY)
def elu(ctx: OpContext) -> float:
    """ELU(x; α, scale, input_scale): slope scale for x > 0, ≤ |α·scale·input_scale| below."""
    a, s, i = float(ctx.arg("alpha")), float(ctx.arg("scale")), float(ctx.arg("input_scale"))
    k = max(abs(s), abs(a * s * i))
    ctx.note(f"elu ×{k:.6g}")
    return k * ctx.lip("self")


@register_rule("aten.hardtanh.default", family=FAMILY)
def hardtanh(ctx: OpContext) -> float:
    """Hardtanh (and ReLU6): 1 (0 when min = max)."""
    k = 0.0 if float(ctx.arg("min_val")) >= float(ctx.arg("max_val")) else 1.0
    ctx.note(f"hardtanh ×{k:g}")
    return k * ctx.lip("self")


@register_rule("aten.log_sigmoid_forward.default", family=FAMILY)
def log_sigmoid(ctx: OpContext) -> tuple[float, float]:
    """log σ(x): derivative 1 − σ(x) ≤ 1 (the second output is a buffer)."""
    ctx.note("log_sigmoid ×1")
    return (ctx.lip("self"), 0.0)


@register_rule("aten._log_softmax.default", family=FAMILY)
def log_softmax(ctx: OpContext) -> float:
    """log-softmax over n entries: Jacobian I − 1pᵀ, an oblique projection of norm √n·‖p‖ ≤ √n."""
    x = ctx.arg("self")
    d = int(ctx.arg("dim"))
    n = x.shape[d] if x.dim() else 1
    k = math.sqrt(n)
    ctx.note(f"log_softmax √{n}")
    return k * ctx.lip("self")


def _clamp_bound(ctx: OpContext, names: tuple[str, ...]) -> float:
    """clamp(x, lo, hi) = min(max(x, lo), hi): |Δ| ≤ max(|Δx|, |Δlo|, |Δhi|) elementwise, so the
    bound is √(Σ bcast·L²) over the input-dependent arguments (1·L(x) when the bounds are constant)."""
    total = 0.0
    for name in names:
        raw = ctx.raw(name)
        if raw is None or not ctx.depends(name):
            continue
        total += broadcast_factor(ctx.arg(name), ctx.out) ** 2 * ctx.lip(name) ** 2  # k copies: k·L²
    dep_bounds = [n for n in names[1:] if ctx.raw(n) is not None and ctx.depends(n)]
    ctx.note("clamp ×1" if not dep_bounds else "clamp with input-dependent bounds √ΣL²")
    return math.sqrt(total)


@register_rule("aten.clamp.default", family=FAMILY)
def clamp(ctx: OpContext) -> float:
    """clamp with constant bounds: 1."""
    lo, hi = ctx.arg("min"), ctx.arg("max")
    if lo is not None and hi is not None and float(lo) >= float(hi):
        ctx.note("clamp to a constant")
        return 0.0
    return _clamp_bound(ctx, ("self",))


@register_rule("aten.clamp.Tensor", family=FAMILY)
def clamp_tensor(ctx: OpContext) -> float:
    """clamp with tensor bounds, which may depend on x."""
    return _clamp_bound(ctx, ("self", "min", "max"))


@register_rule("aten.clamp_min.default", "aten.clamp_max.default", family=FAMILY)
def clamp_one(ctx: OpContext) -> float:
    """clamp_min / clamp_max with a constant: 1."""
    return _clamp_bound(ctx, ("self",))


@register_rule("aten.clamp_min.Tensor", "aten.clamp_max.Tensor", family=FAMILY)
def clamp_one_tensor(ctx: OpContext) -> float:
    """clamp_min / clamp_max with a tensor bound, which may depend on x."""
    other = "min" if "clamp_min" in ctx.op else "max"
    return _clamp_bound(ctx, ("self", other))


@register_rule(
    "aten.maximum.default", "aten.minimum.default", "aten.fmax.default", "aten.fmin.default", family=FAMILY
)
def maximum(ctx: OpContext) -> float:
    """Elementwise max/min of a and b: |Δ| ≤ max(|Δa|, |Δb|), so √(bcast_a·L_a² + bcast_b·L_b²)."""
    return _clamp_bound(ctx, ("self", "other"))


@register_rule("aten.native_dropout.default", family=FAMILY)
def native_dropout(ctx: OpContext) -> float:
    """Training-mode dropout is random: no deterministic bound."""
    if float(ctx.arg("p")) == 0 or ctx.arg("train") is False:
        return (ctx.lip("input"), 0.0)  # type: ignore[return-value]
    raise Unsupported("dropout in training mode is random; certify the model in eval mode")


@register_rule("aten.celu.default", family=FAMILY)
def celu(ctx: OpContext) -> float:
    """CELU(x; α) = max(0, x) + min(0, α(exp(x/α) − 1)): slope ≤ 1 on both sides."""
    if float(ctx.arg("alpha")) == 0:
        raise Unsupported("celu with alpha = 0")
    ctx.note("celu ×1")
    return ctx.lip("self")


SELU_SCALE, SELU_ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717


@register_rule("aten.selu.default", family=FAMILY)
def selu(ctx: OpContext) -> float:
    """SELU = scale·ELU(x; α): slope ≤ scale·max(1, α) ≈ 1.7581."""
    k = SELU_SCALE * max(1.0, SELU_ALPHA) * (1 + 1e-12)
    ctx.note(f"selu ×{k:.6g}")
    return k * ctx.lip("self")
