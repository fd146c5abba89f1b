"""The SLL / convex-potential residual step (Meunier et al. 2022; Araujo et al. 2023), recognised and
checked on the exported graph:

    h(z) = z − c·Wᵀ·T·σ(W·z + b),   c ≥ 0, T = diag(t) ≥ 0 constant, σ slope-restricted to [0, 1],

with W a convolution and Wᵀ its transposed convolution at the same grid (one kernel), or a linear map
and its transpose. Its Jacobian is I − c·Mᵀ·D·M with M = T^½·W and D diagonal in [0, 1]: symmetric,
eigenvalues in [1 − c‖M‖², 1], so ‖J‖ ≤ max(1, c‖M‖² − 1); exactly 1 for SLL's own T (c = 2,
‖M‖ ≤ 1). ‖M‖ is bounded from the actual weights (the smaller of the conv bound and the
Gershgorin/Schur row-sum bound of M·Mᵀ, which SLL's T makes ≤ 1). Every assumption is checked; when
one fails the node falls back to the general sum rule.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from robustbench_lip.lipschitz.bounds.conv import conv2d_bound
from robustbench_lip.lipschitz.bounds.numerics import SAFETY, linear_bound
from robustbench_lip.lipschitz.bounds.rules.registry import Affine, OpContext, opname

Node = torch.fx.Node
CONV = "aten.convolution.default"


def _scalar(ctx: OpContext, a: Any) -> float | None:
    """a as a constant real number (a Python number or a one-element constant tensor)."""
    if isinstance(a, bool):
        return None
    if isinstance(a, (int, float)):
        return float(a)
    if isinstance(a, Node) and ctx.is_constant(a):
        v = ctx.value(a)
        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point():
            return float(v)
    return None


def _strip(ctx: OpContext, n: Any) -> tuple[Any, float]:
    """Peel constant scalings and constant shifts off n: n = s·core + const. Returns (core, s)."""
    s = 1.0
    while isinstance(n, Node):
        t = opname(n)
        if t in ("aten.mul.Tensor", "aten.mul.Scalar") and len(n.args) == 2:
            a, b = n.args
            if (k := _scalar(ctx, b)) is not None and ctx.depends(a):
                n, s = a, s * k
                continue
            if (k := _scalar(ctx, a)) is not None and ctx.depends(b):
                n, s = b, s * k
                continue
        if t == "aten.neg.default":
            n, s = n.args[0], -s
            continue
        if t in ("aten.add.Tensor", "aten.sub.Tensor") and len(n.args) == 2 and not n.kwargs:
            a, b = n.args
            if ctx.depends(a) and ctx.is_fixed(b):
                n = a
                continue
            if t == "aten.add.Tensor" and ctx.depends(b) and ctx.is_fixed(a):
                n = b
                continue
        break
    return n, s


def _slope_in_unit(ctx: OpContext, n: Any) -> bool:
    """n = σ(pre) with σ monotone and 1-Lipschitz (slopes in [0, 1])."""
    t = opname(n)
    if t in ("aten.relu.default", "aten.sigmoid.default", "aten.tanh.default"):
        return len(n.args) == 1
    if t == "aten.leaky_relu.default":
        slope = n.args[1] if len(n.args) > 1 else n.kwargs.get("negative_slope", 0.01)
        return isinstance(slope, (int, float)) and 0.0 <= float(slope) <= 1.0
    if t == "aten.hardtanh.default":
        lo = n.args[1] if len(n.args) > 1 else -1.0
        hi = n.args[2] if len(n.args) > 2 else 1.0
        return isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo <= hi
    return False


def _channel_scale(ctx: OpContext, u: Any, channels: int, axis: int) -> tuple[Any, torch.Tensor]:
    """Peel constant non-negative per-channel multipliers (broadcast only along `axis`) off u.
    Returns (rest, t) with t of length `channels` (ones when there are none)."""
    t = torch.ones(channels, dtype=torch.float64)
    while opname(u) == "aten.mul.Tensor" and len(u.args) == 2:
        a, b = u.args
        var, c = (a, b) if ctx.depends(a) and not ctx.depends(b) else (b, a)
        if not ctx.depends(var):
            break
        if (k := _scalar(ctx, c)) is not None and not isinstance(c, Node):
            if not (k >= 0 and math.isfinite(k)):
                break
            t, u = t * k, var
            continue
        if not isinstance(c, Node) or not ctx.is_constant(c):
            break
        cv, vv = ctx.value(c), ctx.value(var)
        if not isinstance(cv, torch.Tensor) or not isinstance(vv, torch.Tensor) or cv.dim() > vv.dim():
            break
        shape = [1] * (vv.dim() - cv.dim()) + list(cv.shape)
        ax = axis % vv.dim()
        if any(s != 1 for i, s in enumerate(shape) if i != ax) or shape[ax] not in (1, channels):
            break
        vec = cv.detach().to(torch.float64).reshape(-1).expand(channels)
        if not bool((vec >= 0).all()) or not bool(torch.isfinite(vec).all()):
            break
        t, u = t * vec, var
    return u, t


def _same_tensor(ctx: OpContext, a: Any, b: Any) -> bool:
    if a is b:
        return isinstance(a, Node)
    if not (isinstance(a, Node) and isinstance(b, Node) and ctx.is_constant(a) and ctx.is_constant(b)):
        return False
    va, vb = ctx.value(a), ctx.value(b)
    return isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor) and torch.equal(va, vb)


def _transpose_of(ctx: OpContext, wt: Any, w: Any) -> bool:
    """wt is the transpose of the 2-d constant w (t / permute [1, 0] / transpose 0 1 of it, or equal
    to its transpose as a constant)."""
    t = opname(wt)
    if t == "aten.t.default" or (t == "aten.permute.default" and list(wt.args[1]) == [1, 0]):
        if _same_tensor(ctx, wt.args[0], w):
            return True
    if t == "aten.transpose.int" and sorted(int(d) % 2 for d in wt.args[1:3]) == [0, 1]:
        if _same_tensor(ctx, wt.args[0], w):
            return True
    va, vb = ctx.value(wt), ctx.value(w)
    ok = isinstance(wt, Node) and isinstance(w, Node) and ctx.is_constant(wt) and ctx.is_constant(w)
    return bool(ok and va.dim() == 2 and vb.dim() == 2 and torch.equal(va, vb.t()))


def _gram_rowsum_sq(m: torch.Tensor, groups: int) -> float:
    """Upper bound on ‖M‖² for the conv of kernel m (c_out, c_in/g, kh, kw) at any grid, stride,
    dilation or zero padding: ‖M‖² = ‖M·Mᵀ‖ ≤ max row sum of |M·Mᵀ| (a symmetric operator whose
    kernel has entries Σ over channels and taps of m_i·m_j at each relative shift)."""
    co, cig, kh, kw = m.shape
    full = torch.zeros(co, cig * groups, kh, kw, dtype=torch.float64)
    og = co // groups
    for g in range(groups):
        full[g * og : (g + 1) * og, g * cig : (g + 1) * cig] = m[g * og : (g + 1) * og]
    gram = F.conv2d(full, full, padding=(kh - 1, kw - 1))  # (co, co, 2kh−1, 2kw−1)
    return float(gram.abs().sum(dim=(1, 2, 3)).max())


def _conv_core(ctx: OpContext, core: Node, z: Any) -> tuple[Any, float] | None:
    """core = conv_transpose(u, W) and the pre-activation reads conv(z, W) with the same kernel and
    geometry, transposed exactly at z's grid: (u's peeled chain end, ‖T^½W‖ bound) or None."""
    a = list(core.args)
    if len(a) != 9 or not bool(a[6]) or not ctx.is_constant(a[1]):
        return None
    w, groups = ctx.value(a[1]), int(a[8])
    zv = ctx.value(z)
    if not isinstance(w, torch.Tensor) or w.dim() != 4 or tuple(ctx.value(core).shape) != tuple(zv.shape):
        return None
    rest, t = _channel_scale(ctx, a[0], int(w.shape[0]), 1)
    if not _slope_in_unit(ctx, rest):
        return None
    pre, sp = _strip(ctx, rest.args[0])  # σ(s·y + b) with 0 ≤ s ≤ 1 keeps the slopes in [0, 1]
    if not 0.0 <= sp <= 1.0:
        return None
    p = list(pre.args) if opname(pre) == CONV else []
    if len(p) != 9 or bool(p[6]) or p[0] is not z or not _same_tensor(ctx, p[1], a[1]):
        return None
    if [list(p[i]) for i in (3, 4, 5)] != [list(a[i]) for i in (3, 4, 5)] or int(p[8]) != groups:
        return None
    if zv.dim() != 4 or not ctx.is_fixed(p[2]) or tuple(ctx.value(pre).shape) != tuple(ctx.value(a[0]).shape):
        return None
    m = w.detach().to(torch.float64) * t.sqrt().view(-1, 1, 1, 1)
    nb, _ = conv2d_bound(m, tuple(zv.shape[-2:]), p[3], p[4], p[5], groups, "zeros", ctx.mode)
    return rest, min(nb, SAFETY * math.sqrt(_gram_rowsum_sq(m, groups)))


def _dense_core(ctx: OpContext, core: Node, z: Any) -> tuple[Any, float] | None:
    """core = linear(u, Wᵀ) (or mm(u, W)) and the pre-activation is linear(z, W) (or mm(z, Wᵀ))."""
    tc = opname(core)
    if tc == "aten.linear.default" and len(core.args) >= 2:
        u, wt = core.args[0], core.args[1]
    else:
        return None
    if not ctx.is_constant(wt) or (len(core.args) > 2 and not ctx.is_fixed(core.args[2])):
        return None
    wtv = ctx.value(wt)
    if not isinstance(wtv, torch.Tensor) or wtv.dim() != 2:
        return None
    rest, t = _channel_scale(ctx, u, int(wtv.shape[1]), -1)
    if not _slope_in_unit(ctx, rest):
        return None
    pre, sp = _strip(ctx, rest.args[0])
    if not 0.0 <= sp <= 1.0:
        return None
    if opname(pre) != "aten.linear.default" or pre.args[0] is not z:
        return None
    if not _transpose_of(ctx, wt, pre.args[1]):
        return None
    if len(pre.args) > 2 and not ctx.is_fixed(pre.args[2]):
        return None
    if tuple(ctx.value(core).shape) != tuple(ctx.value(z).shape):
        return None
    m = ctx.value(pre.args[1]).detach().to(torch.float64) * t.sqrt().view(-1, 1)
    return rest, linear_bound(m)


def sll_step(ctx: OpContext, z: Any, branch: Any, coef: float) -> Affine | None:
    """Bound of h = z − coef·branch when branch is c'·Wᵀ·T·σ(W·z + b) (see the module docstring):
    L(z)·max(1, c‖M‖² − 1) with c = coef·c'; None when the pattern does not hold exactly."""
    if not (isinstance(z, Node) and isinstance(branch, Node) and ctx.depends(z)):
        return None
    zv, out = ctx.value(z), ctx.out
    if not (isinstance(zv, torch.Tensor) and isinstance(out, torch.Tensor)) or zv.shape != out.shape:
        return None  # a broadcast in the sum would copy z
    core, s = _strip(ctx, branch)
    c = coef * s
    if not isinstance(core, Node) or c < 0 or not math.isfinite(c):
        return None
    found = _conv_core(ctx, core, z) if opname(core) == CONV else _dense_core(ctx, core, z)
    if found is None:
        return None
    m = found[1]
    ctx.note(f"SLL residual step max(1, c‖M‖²−1), c={c:g}, ‖M‖≤{m:.4f}")
    # h = α·z + B(z) with α = 1 − c‖M‖²/2: B's Jacobian (c‖M‖²/2)·I − c·MᵀDM is symmetric with
    # eigenvalues in ±c‖M‖²/2, so for R = 2A − I the identity part is kept (|α| + ½c‖M‖² is the
    # max(1, c‖M‖² − 1) above)
    half = c * m * m / 2.0
    alpha = 1.0 - half
    bz = ctx.bound(z)
    return Affine(alpha * bz.alpha, abs(alpha) * bz.lip + half * bz.total)


def sll_of_sum(ctx: OpContext, sign: float) -> Affine | None:
    """The SLL pattern at an add (sign +1) or sub (sign −1) node: z ± alpha·branch, either order
    for add."""
    alpha = ctx.arg("alpha")
    alpha = 1.0 if alpha is None else float(alpha)
    a, b = ctx.raw("self"), ctx.raw("other")
    out = sll_step(ctx, a, b, -sign * alpha)
    if out is None and sign > 0 and alpha == 1.0:
        out = sll_step(ctx, b, a, -1.0)
    return out


__all__ = ["sll_of_sum", "sll_step"]
