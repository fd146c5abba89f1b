"""Rules of the spatial family: pooling, interpolation and padding on (N, C, H, W); each takes only
its tensor input from x (`lipschitz_args`), the rest are sizes and flags.

Parameter-free linear spatial ops act on each channel alike, so their norm is that of their
single-channel matrix; those that are separable (M = M_h ⊗ M_w) get its exact norm ‖M_h‖·‖M_w‖ at any
size (`numerics.separable_norm`), the others a dense SVD or a Schur test. Max pooling: √c with c the
largest number of windows covering one pixel (a pixel's change reaches at most c outputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from robustbench_lip.lipschitz.bounds.numerics import (
    adaptive_windows_per_pixel,
    spatial_linear_bound,
    windows_per_pixel,
)
from robustbench_lip.lipschitz.bounds.rules.registry import DISCRETE, OpContext, Unsupported, register_rule

FAMILY = "spatial"
Fn = Callable[[torch.Tensor], torch.Tensor]


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) == 0:
            return (0, 0)
        return (int(v[0]), int(v[-1])) if len(v) == 1 else (int(v[0]), int(v[1]))
    return (int(v), int(v))


def _spatial(
    ctx: OpContext,
    fn: Fn,
    axis_fns: tuple[Fn, Fn] | None,
    nonnegative: bool,
    what: str,
) -> float:
    x = ctx.value(ctx.raw(0))
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise Unsupported(f"{what} on a {getattr(x, 'dim', lambda: '?')()}-d input (only (N, C, H, W))")
    hw = (int(x.shape[-2]), int(x.shape[-1]))
    key = (ctx.op, repr([a for a in ctx.node.args[1:]]), repr(sorted(ctx.node.kwargs.items())), hw)
    cache = ctx.state.setdefault("spatial_cache", {})
    if key not in cache:
        cache[key] = spatial_linear_bound(fn, hw, nonnegative, axis_fns)
    r = cache[key]
    if r is None:
        raise Unsupported(f"{what} at {hw[0]}×{hw[1]}: not separable and too large for a dense bound")
    ctx.note(f"{what} {r[1]}")
    return r[0] * ctx.lip(ctx.raw(0))


def _args_from(ctx: OpContext, names: tuple[str, ...]) -> list[Any]:
    return [ctx.arg(n) for n in names]


@register_rule("aten.avg_pool2d.default", family=FAMILY, lipschitz_args=("self",))
def avg_pool2d(ctx: OpContext) -> float:
    """Average pooling: exact norm of its separable single-channel matrix."""
    k, s, p = _pair(ctx.arg("kernel_size")), ctx.arg("stride"), _pair(ctx.arg("padding"))
    s = _pair(s) if s not in (None, [], ()) else k
    ceil, cip, div = ctx.arg("ceil_mode"), ctx.arg("count_include_pad"), ctx.arg("divisor_override")
    op = torch.ops.aten.avg_pool2d.default

    def fn(z: torch.Tensor) -> torch.Tensor:
        return op(z, list(k), list(s), list(p), ceil, cip, div)

    def fh(z: torch.Tensor) -> torch.Tensor:
        return op(z, [k[0], 1], [s[0], 1], [p[0], 0], ceil, cip, None)

    def fw(z: torch.Tensor) -> torch.Tensor:
        return op(z, [1, k[1]], [1, s[1]], [0, p[1]], ceil, cip, None)

    # a negative divisor_override makes every entry of the matrix negative: no Schur test for it
    return _spatial(ctx, fn, (fh, fw) if div is None else None, div is None or div > 0, "avg-pool")


@register_rule(
    "aten._adaptive_avg_pool2d.default",
    "aten.adaptive_avg_pool2d.default",
    family=FAMILY,
    lipschitz_args=("self",),
)
def adaptive_avg_pool2d(ctx: OpContext) -> float:
    """Adaptive average pooling: exact separable norm."""
    oh, ow = _pair(ctx.arg("output_size"))
    op = torch.ops.aten._adaptive_avg_pool2d.default
    return _spatial(
        ctx,
        lambda z: op(z, [oh, ow]),
        (lambda z: op(z, [oh, 1]), lambda z: op(z, [1, ow])),
        True,
        "adaptive-avg-pool",
    )


def _upsample(ctx: OpContext, op: Any, extra: list[str], what: str, nonneg: bool) -> float:
    out = ctx.out
    ho, wo = int(out.shape[-2]), int(out.shape[-1])
    size = ctx.arg("output_size")
    scales = ctx.arg("scale_factors")
    rest = _args_from(ctx, tuple(extra))

    def fn(z: torch.Tensor) -> torch.Tensor:
        return op(z, size, *rest, scales)

    if scales is not None:
        sh, sw = float(scales[0]), float(scales[-1])
        axes = (lambda z: op(z, None, *rest, [sh, 1.0]), lambda z: op(z, None, *rest, [1.0, sw]))
    else:
        axes = (lambda z: op(z, [ho, 1], *rest, None), lambda z: op(z, [1, wo], *rest, None))
    return _spatial(ctx, fn, axes, nonneg, what)


@register_rule("aten.upsample_bilinear2d.vec", family=FAMILY, lipschitz_args=("input",))
def upsample_bilinear2d(ctx: OpContext) -> float:
    """Bilinear interpolation: exact separable norm (milliseconds at any size)."""
    return _upsample(ctx, torch.ops.aten.upsample_bilinear2d.vec, ["align_corners"], "bilinear", True)


@register_rule("aten.upsample_bicubic2d.vec", family=FAMILY, lipschitz_args=("input",))
def upsample_bicubic2d(ctx: OpContext) -> float:
    """Bicubic interpolation (negative taps): exact separable norm."""
    return _upsample(ctx, torch.ops.aten.upsample_bicubic2d.vec, ["align_corners"], "bicubic", False)


@register_rule("aten.upsample_nearest2d.vec", family=FAMILY, lipschitz_args=("input",))
def upsample_nearest2d(ctx: OpContext) -> float:
    """Nearest-neighbour upsampling: exact separable norm."""
    return _upsample(ctx, torch.ops.aten.upsample_nearest2d.vec, [], "nearest", True)


@register_rule("aten._upsample_nearest_exact2d.vec", family=FAMILY, lipschitz_args=("input",))
def upsample_nearest_exact2d(ctx: OpContext) -> float:
    """Nearest-exact upsampling: exact separable norm."""
    return _upsample(ctx, torch.ops.aten._upsample_nearest_exact2d.vec, [], "nearest-exact", True)


@register_rule(
    "aten._upsample_bilinear2d_aa.vec",
    "aten._upsample_bicubic2d_aa.vec",
    family=FAMILY,
    lipschitz_args=("input",),
)
def upsample_aa(ctx: OpContext) -> float:
    """Anti-aliased bilinear/bicubic interpolation: exact separable norm."""
    op = ctx.node.target
    return _upsample(ctx, op, ["align_corners"], "antialiased interpolation", False)


@register_rule(
    "aten.reflection_pad2d.default", "aten.replication_pad2d.default", family=FAMILY, lipschitz_args=("self",)
)
def reflect_pad2d(ctx: OpContext) -> float:
    """Reflection / replication padding: exact separable norm (√ of the largest copy count per axis)."""
    pad = [int(v) for v in ctx.arg("padding")]
    op = ctx.node.target
    left, right, top, bottom = pad
    return _spatial(
        ctx,
        lambda z: op(z, pad),
        (lambda z: op(z, [0, 0, top, bottom]), lambda z: op(z, [left, right, 0, 0])),
        True,
        "reflect/replicate pad",
    )


@register_rule("aten.constant_pad_nd.default", family=FAMILY, lipschitz_args=("self",))
def constant_pad(ctx: OpContext) -> float:
    """Constant padding (negative pads crop): a partial isometry, 1."""
    ctx.note("constant pad")
    return ctx.lip("self")


def _max_pool_c(ctx: OpContext) -> int:
    k = _pair(ctx.arg("kernel_size"))
    s = ctx.arg("stride")
    s = _pair(s) if s not in (None, [], ()) else k
    d = _pair(ctx.arg("dilation"))
    return windows_per_pixel(k[0], s[0], d[0]) * windows_per_pixel(k[1], s[1], d[1])


@register_rule("aten.max_pool2d_with_indices.default", family=FAMILY, lipschitz_args=("self",))
def max_pool2d_with_indices(ctx: OpContext) -> tuple[float, str]:
    """Max pooling: √c, c = most windows covering one pixel (indices: DISCRETE)."""
    c = _max_pool_c(ctx)
    ctx.note(f"max-pool √{c}")
    return (math.sqrt(c) * ctx.lip("self"), DISCRETE)


@register_rule("aten.max_pool2d.default", family=FAMILY, lipschitz_args=("self",))
def max_pool2d(ctx: OpContext) -> float:
    """Max pooling: √c."""
    c = _max_pool_c(ctx)
    ctx.note(f"max-pool √{c}")
    return math.sqrt(c) * ctx.lip("self")


@register_rule("aten.adaptive_max_pool2d.default", family=FAMILY, lipschitz_args=("self",))
def adaptive_max_pool2d(ctx: OpContext) -> tuple[float, str]:
    """Adaptive max pooling: √c over its (possibly overlapping) windows (indices: DISCRETE)."""
    x = ctx.arg("self")
    oh, ow = _pair(ctx.arg("output_size"))
    c = adaptive_windows_per_pixel(x.shape[-2], oh) * adaptive_windows_per_pixel(x.shape[-1], ow)
    ctx.note(f"adaptive max-pool √{c}")
    return (math.sqrt(c) * ctx.lip("self"), DISCRETE)


@register_rule(
    "aten.pixel_shuffle.default", "aten.pixel_unshuffle.default", family=FAMILY, lipschitz_args=("self",)
)
def pixel_shuffle(ctx: OpContext) -> float:
    """Pixel (un)shuffle: a permutation, 1."""
    ctx.note("permutation")
    return ctx.lip("self")
