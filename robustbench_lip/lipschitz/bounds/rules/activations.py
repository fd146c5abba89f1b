"""Rules of the activation family: elementwise maps by their Lipschitz constants (sup |f'|).

A rule whose constant depends on a scalar argument (softplus β and threshold, ELU α / scale /
input_scale, CELU α, leaky / PReLU slopes, hardtanh and clamp bounds) checks the range it holds for
and otherwise raises NonLipschitz (with the reason) or Unsupported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from robustbench_lip.lipschitz.bounds.rules.registry import (
    ANY_ARG,
    NonLipschitz,
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
SELF = ("self",)


def _finite(ctx: OpContext, *names: str) -> list[float]:
    """Scalar arguments as floats; Unsupported when one is NaN or infinite."""
    vals = [float(ctx.arg(n)) for n in names]
    bad = [f"{n}={v}" for n, v in zip(names, vals, strict=True) if not math.isfinite(v)]
    if bad:
        raise Unsupported(f"{ctx.op} with a non-finite parameter ({', '.join(bad)})")
    return vals


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
    (("aten.abs.default",), 1.0, "abs"),
    (("aten.sin.default", "aten.cos.default"), 1.0, "sin/cos"),
    (("aten.atan.default",), 1.0, "atan"),
    (("aten.erf.default",), 2.0 / math.sqrt(math.pi), "erf"),
    (("aten._softmax.default", "aten._safe_softmax.default"), 1.0, "softmax"),
]:
    register_rule(*_ops, family=FAMILY, lipschitz_args=SELF)(_const(_k, _what))


@register_rule("aten.softplus.default", family=FAMILY, lipschitz_args=SELF)
def softplus(ctx: OpContext) -> float:
    """softplus(x; β, t) = log(1 + e^{βx})/β, slope σ(βx) ≤ 1, but ATen returns x itself where βx > t:
    at βx = t the value jumps by log(1 + e^{−t})/|β| > 0 for every finite t (≈ 2e-9/|β| at the default
    t = 20), so it is not Lipschitz on ℝ; only t = ±∞ (one branch everywhere) gets a bound."""
    beta, t = float(ctx.arg("beta")), float(ctx.arg("threshold"))
    if not math.isfinite(beta) or beta == 0 or math.isnan(t):
        raise Unsupported(f"softplus with beta={beta}, threshold={t}")
    if math.isfinite(t):
        jump = (max(-t, 0.0) + math.log1p(math.exp(-abs(t)))) / abs(beta)  # log(1 + e^-t)/|β|, no overflow
        raise NonLipschitz(
            f"softplus(beta={beta:g}, threshold={t:g}) switches to x where beta·x > threshold: a jump of "
            f"{jump:.3g} at x = {t / beta:.6g} (log(1 + e^-threshold)/|beta|), so it is not Lipschitz"
        )
    ctx.note("softplus ×1" if t > 0 else "softplus (identity) ×1")
    return ctx.lip("self")


@register_rule("aten.gelu.default", family=FAMILY, lipschitz_args=SELF)
def gelu(ctx: OpContext) -> float:
    """GELU: Φ(√2) + √2·φ(√2) ≈ 1.1289 (exact erf form); tanh approximation by a fine grid."""
    k = GELU_TANH_LIP if ctx.arg("approximate") == "tanh" else GELU_LIP
    ctx.note(f"gelu ×{k:.6g}")
    return k * ctx.lip("self")


@register_rule("aten.leaky_relu.default", family=FAMILY, lipschitz_args=SELF)
def leaky_relu(ctx: OpContext) -> float:
    """LeakyReLU: max(1, |slope|) for any finite slope."""
    (slope,) = _finite(ctx, "negative_slope")
    k = max(1.0, abs(slope))
    ctx.note(f"leaky_relu ×{k:.6g}")
    return k * ctx.lip("self")


@register_rule("aten._prelu_kernel.default", family=FAMILY, lipschitz_args=SELF)
def prelu(ctx: OpContext) -> float:
    """PReLU with a constant (declared: not from x) finite weight: max(1, max|w|)."""
    w = ctx.const("weight").detach()
    if w.numel() and not bool(torch.isfinite(w).all()):
        raise Unsupported("prelu with a non-finite weight")
    k = max(1.0, float(w.abs().max()) if w.numel() else 0.0)
    ctx.note(f"prelu ×{k:.6g}")
    return k * ctx.lip("self")


def _elu_slope(a: float, s: float, i: float, what: str) -> float:
    """sup|f'| of ATen's elu: f(x) = s·x for x > 0, a·s·(e^{i·x} − 1) for x ≤ 0 (continuous at 0), whose
    slope a·s·i·e^{i·x} on x ≤ 0 is at most |a·s·i| when i ≥ 0 and unbounded when i < 0 (unless a·s = 0)."""
    if i < 0 and a * s != 0:
        raise NonLipschitz(
            f"{what}: for x < 0 its slope {a * s * i:g}·e^({i:g}·x) grows without bound as x → −∞, "
            "so it is not Lipschitz"
        )
    return max(abs(s), abs(a * s * i))


@register_rule("aten.elu.default", family=FAMILY, lipschitz_args=SELF)
def elu(ctx: OpContext) -> float:
    """ELU(x; α, scale, input_scale): slope scale for x > 0, ≤ |α·scale·input_scale| below when
    input_scale ≥ 0; not Lipschitz when input_scale < 0 (and α·scale ≠ 0)."""
    a, s, i = _finite(ctx, "alpha", "scale", "input_scale")
    k = _elu_slope(a, s, i, f"elu(alpha={a:g}, scale={s:g}, input_scale={i:g})")
    ctx.note(f"elu ×{k:.6g}")
    return k * ctx.lip("self")


@register_rule("aten.hardtanh.default", family=FAMILY, lipschitz_args=SELF)
def hardtanh(ctx: OpContext) -> float:
    """Hardtanh (and ReLU6) = clamp(x, min, max): 1; 0 when min ≥ max (ATen then returns max_val
    everywhere). Bounds may be ±∞, not NaN."""
    lo, hi = float(ctx.arg("min_val")), float(ctx.arg("max_val"))
    if math.isnan(lo) or math.isnan(hi):
        raise Unsupported(f"hardtanh with a NaN bound (min={lo}, max={hi})")
    k = 0.0 if lo >= hi else 1.0
    ctx.note(f"hardtanh ×{k:g}")
    return k * ctx.lip("self")


@register_rule("aten.log_sigmoid_forward.default", family=FAMILY, lipschitz_args=SELF)
def log_sigmoid(ctx: OpContext) -> tuple[float, float]:
    """(log σ(x), buffer): log σ has slope 1 − σ(x) ≤ 1; the buffer is exp(−|x|) on CPU (slope ≤ 1,
    its own bound, not 0) and an empty tensor on CUDA."""
    ctx.note("log_sigmoid ×1")
    lx = ctx.lip("self")
    return (lx, lx)


@register_rule("aten._log_softmax.default", family=FAMILY, lipschitz_args=SELF)
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
    for name in names[1:]:
        v = ctx.arg(name)
        if isinstance(v, torch.Tensor) and v.is_floating_point() and bool(torch.isnan(v).any()):
            raise Unsupported(f"{ctx.op} with a NaN bound {name!r}")
    total = 0.0
    for name in names:
        raw = ctx.raw(name)
        if raw is None or not ctx.depends(name):
            continue
        total += broadcast_factor(ctx.arg(name), ctx.out) ** 2 * ctx.lip(name) ** 2  # k copies: k·L²
    dep_bounds = [n for n in names[1:] if ctx.raw(n) is not None and ctx.depends(n)]
    ctx.note("clamp ×1" if not dep_bounds else "clamp with input-dependent bounds √ΣL²")
    return math.sqrt(total)


def _scalar_bounds(ctx: OpContext, *names: str) -> list[float | None]:
    """Scalar clamp bounds (None: absent); Unsupported for NaN."""
    out = [None if ctx.arg(n) is None else float(ctx.arg(n)) for n in names]
    if any(v is not None and math.isnan(v) for v in out):
        raise Unsupported(f"{ctx.op} with a NaN bound")
    return out


@register_rule("aten.clamp.default", family=FAMILY, lipschitz_args=SELF)
def clamp(ctx: OpContext) -> float:
    """clamp with constant scalar bounds: 1 (0 when min ≥ max: ATen returns max everywhere)."""
    lo, hi = _scalar_bounds(ctx, "min", "max")
    if lo is not None and hi is not None and lo >= hi:
        ctx.note("clamp to a constant")
        return 0.0
    return _clamp_bound(ctx, ("self",))


@register_rule("aten.clamp.Tensor", family=FAMILY, lipschitz_args=ANY_ARG)
def clamp_tensor(ctx: OpContext) -> float:
    """clamp with tensor bounds, which may depend on x (their own bounds enter √ΣL²)."""
    return _clamp_bound(ctx, ("self", "min", "max"))


@register_rule("aten.clamp_min.default", "aten.clamp_max.default", family=FAMILY, lipschitz_args=SELF)
def clamp_one(ctx: OpContext) -> float:
    """clamp_min / clamp_max with a constant: 1."""
    _scalar_bounds(ctx, "min" if "clamp_min" in ctx.op else "max")
    return _clamp_bound(ctx, ("self",))


@register_rule("aten.clamp_min.Tensor", "aten.clamp_max.Tensor", family=FAMILY, lipschitz_args=ANY_ARG)
def clamp_one_tensor(ctx: OpContext) -> float:
    """clamp_min / clamp_max with a tensor bound, which may depend on x."""
    other = "min" if "clamp_min" in ctx.op else "max"
    return _clamp_bound(ctx, ("self", other))


@register_rule("aten.fmax.default", "aten.fmin.default", family=FAMILY, lipschitz_args=ANY_ARG)
def maximum(ctx: OpContext) -> float:
    """Elementwise max/min of a and b: |Δ| ≤ max(|Δa|, |Δb|), so √(bcast_a·L_a² + bcast_b·L_b²).
    Registered for fmax/fmin; aten.maximum/minimum are registered in `constrained`, which delegates
    here outside its patterns."""
    return _clamp_bound(ctx, ("self", "other"))


@register_rule("aten.native_dropout.default", family=FAMILY, lipschitz_args=("input",))
def native_dropout(ctx: OpContext) -> tuple[float, float]:
    """(output, mask): with train=False the output is the input and the mask all ones (a constant).
    In train mode (train True or None) it draws a random mask; propagate refuses it before this rule."""
    if ctx.arg("train") is False:
        ctx.note("dropout (eval) identity")
        return (ctx.lip("input"), 0.0)
    raise Unsupported("dropout in training mode is random; certify the model in eval mode")


@register_rule("aten.celu.default", family=FAMILY, lipschitz_args=SELF)
def celu(ctx: OpContext) -> float:
    """CELU(x; α) = max(0, x) + min(0, α(exp(x/α) − 1)) = elu(x; α, 1, 1/α): slope ≤ 1 for α > 0;
    for α < 0 the slope e^{x/α} is unbounded as x → −∞ (not Lipschitz); α = 0 is undefined."""
    (a,) = _finite(ctx, "alpha")
    if a == 0:
        raise Unsupported("celu with alpha = 0 is undefined (it divides by alpha)")
    k = _elu_slope(a, 1.0, 1.0 / a, f"celu(alpha={a:g})")
    ctx.note(f"celu ×{k:.6g}")
    return k * ctx.lip("self")


SELU_SCALE, SELU_ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717


@register_rule("aten.selu.default", family=FAMILY, lipschitz_args=SELF)
def selu(ctx: OpContext) -> float:
    """SELU = scale·ELU(x; α): slope ≤ scale·max(1, α) ≈ 1.7581."""
    k = SELU_SCALE * max(1.0, SELU_ALPHA) * (1 + 1e-12)
    ctx.note(f"selu ×{k:.6g}")
    return k * ctx.lip("self")
