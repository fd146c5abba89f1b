"""L2-norm pooling, √(K·avg_pool2d(z²)) (deel-torchlip's ScaledL2NormPool2d, `F.lp_pool2d` with p = 2,
or written by hand), recognised in the lowered graph and fused into one node so that its square and
square root (neither Lipschitz alone) are bounded together.

Each output is out_w = √(K·Σ_p A_wp·z_p² + c) = ‖((√(K·A_wp)·z_p)_p, √c)‖ (c ≥ 0), with A ≥ 0
the avg-pool matrix (window, padding, ceil_mode, count_include_pad, divisor_override all in A). A
norm is 1-Lipschitz, so Σ_w |Δout_w|² ≤ K·Σ_p (Σ_w A_wp)·Δz_p² ≤ K·max_p(Σ_w A_wp)·‖Δz‖²: the constant is
√(K·max column sum of A), computed exactly as the adjoint of the pooling applied to ones. For
disjoint k×k windows with K = k² it is 1; overlapping windows cost the √ of the largest coverage.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from robustbench_lip.lipschitz.bounds.rules.registry import OpContext, Unsupported, opname, register_rule

FUSED = "rlip_l2_norm_pool2d"
AVG = "aten.avg_pool2d.default"
_POOL_NAMES = ("stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_POOL_DEFAULTS = ([], 0, False, True, None)


def rlip_l2_norm_pool2d(
    z: torch.Tensor, scale: float, offset: float, kernel: Any, *pool: Any
) -> torch.Tensor:
    """√(scale·avg_pool2d(z², kernel, *pool) + offset): the fused L2-norm pooling (the chain's values)."""
    return torch.pow(torch.ops.aten.avg_pool2d.default(z.pow(2), kernel, *pool) * scale + offset, 0.5)


def _num(a: Any) -> float | None:
    return float(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else None


def _only_user(n: torch.fx.Node, user: torch.fx.Node) -> bool:
    return set(n.users) == {user}


Match = tuple[list[torch.fx.Node], torch.fx.Node, float, float, torch.fx.Node]


def _peel(q: Any, nodes: list[torch.fx.Node]) -> tuple[Any, float, float]:
    """Peel scalings and shifts by numbers off q (each used by the previous node alone): q = k·q' + c.
    Returns (q', k, c); appends the peeled nodes."""
    k, c = 1.0, 0.0
    while isinstance(q, torch.fx.Node) and _only_user(q, nodes[-1]) and len(q.args) == 2:
        t, (a, b) = opname(q), q.args
        if t in ("aten.mul.Tensor", "aten.mul.Scalar"):
            s, nxt = (_num(b), a) if _num(b) is not None else (_num(a), b)
            if s is None or not isinstance(nxt, torch.fx.Node):
                break
            k = k * s
        elif t in ("aten.add.Tensor", "aten.add.Scalar") and not q.kwargs:
            e, nxt = (_num(b), a) if _num(b) is not None else (_num(a), b)
            if e is None or not isinstance(nxt, torch.fx.Node):
                break
            c = c + k * e
        else:
            break
        nodes.append(q)
        q = nxt
    return q, k, c


def _match(root: torch.fx.Node) -> Match | None:
    """root = √(K·avg_pool2d(z²) + c) as pow(·, 0.5) or sqrt: (pattern nodes, z, K, c, avg node)."""
    t = opname(root)
    if not ((t == "aten.pow.Tensor_Scalar" and _num(root.args[1]) == 0.5) or t == "aten.sqrt.default"):
        return None
    nodes: list[torch.fx.Node] = [root]
    q, k, off = _peel(root.args[0], nodes)
    if opname(q) == "aten.mul.Tensor" and _only_user(q, nodes[-1]):  # sign(a)·relu(|a|) = a (lp_pool)
        sg, rl = q.args
        if opname(sg) == "aten.relu.default":
            sg, rl = rl, sg
        ab = rl.args[0] if opname(rl) == "aten.relu.default" else None
        if opname(sg) != "aten.sign.default" or opname(ab) != "aten.abs.default":
            return None
        if sg.args[0] is not ab.args[0]:
            return None
        if not (_only_user(sg, q) and _only_user(rl, q) and _only_user(ab, rl)):
            return None
        avg = sg.args[0]
        if set(avg.users) != {sg, ab}:
            return None
        nodes += [q, sg, rl, ab]
    else:
        avg = q
        if not _only_user(avg, nodes[-1]):
            return None
    if opname(avg) != AVG:
        return None
    sq = avg.args[0]
    if opname(sq) == "aten.pow.Tensor_Scalar" and _num(sq.args[1]) == 2.0:
        z = sq.args[0]
    elif opname(sq) == "aten.mul.Tensor" and sq.args[0] is sq.args[1]:
        z = sq.args[0]
    else:
        return None
    if not isinstance(z, torch.fx.Node) or not _only_user(sq, avg) or not (k > 0 and off >= 0):
        return None
    if not (math.isfinite(k) and math.isfinite(off)):
        return None
    return [*nodes, avg, sq], z, k, off, avg


def fuse_l2_pools(gm: torch.fx.GraphModule) -> int:
    """Replace every √(K·avg_pool2d(z²)) chain (intermediate values used by the chain alone) by one
    `rlip_l2_norm_pool2d` node; returns how many were fused."""
    count = 0
    for root in list(gm.graph.nodes):
        if root.graph is not gm.graph or root.op != "call_function":
            continue
        m = _match(root)
        if m is None:
            continue
        nodes, z, k, off, avg = m
        pool = list(avg.args[2:]) + list(_POOL_DEFAULTS[len(avg.args) - 2 :])
        pool = [avg.kwargs.get(n, v) for n, v in zip(_POOL_NAMES, pool, strict=True)]
        if pool[4] is not None and not (isinstance(pool[4], int) and pool[4] > 0):
            continue
        with gm.graph.inserting_before(root):
            fused = gm.graph.call_function(rlip_l2_norm_pool2d, (z, k, off, avg.args[1], *pool))
        root.replace_all_uses_with(fused)
        for n in nodes:
            gm.graph.erase_node(n)
        count += 1
    if count:
        gm.recompile()
    return count


@register_rule(FUSED, family="spatial", lipschitz_args=("0",))
def l2_norm_pool(ctx: OpContext) -> float:
    """√(K·avg_pool2d(z²) + c), c ≥ 0: √(K·max_p Σ_w A_wp) (see the module docstring)."""
    args = ctx.node.args
    if any(isinstance(a, torch.fx.Node) for a in args[1:]) or len(args) != 9 or not float(args[2]) >= 0:
        raise Unsupported("L2-norm pooling with tensor-valued parameters")
    z = ctx.value(args[0])
    k = float(args[1])
    if not isinstance(z, torch.Tensor) or z.dim() not in (3, 4) or not k > 0:
        raise Unsupported("L2-norm pooling of a tensor that is not (N,) C, H, W")
    ones = torch.ones(1, 1, *z.shape[-2:], dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        (cover,) = torch.autograd.grad(
            torch.ops.aten.avg_pool2d.default(ones, args[3], *args[4:]).sum(), ones
        )
    if bool((cover < 0).any()):
        raise Unsupported("L2-norm pooling with negative pooling weights")
    ctx.note("L2-norm pooling √(K·max coverage/divisor)")
    return math.sqrt(k * float(cover.max())) * (1 + 1e-12) * ctx.lip(args[0])


__all__ = ["FUSED", "fuse_l2_pools", "l2_norm_pool", "rlip_l2_norm_pool2d"]
