"""Convolutions bounded together with the operator that feeds them, recognised and checked:

- **Padding + conv as one operator.** A conv (zero conv padding) whose input P is a circular /
  reflect / replicate padding of one tensor z, used by that conv alone: torch and orthogonium lower
  circular padding to a chain of slice / copy / slice_scatter steps on an empty tensor (each charged
  √2 by itself). The chain is checked to be exactly `F.pad(z, pad, mode)` by evaluating it on two
  sets of distinct values (its ops only move entries; NaN marks never-written ones, and an entry
  taken from a constant cannot match both sets, so this identifies its index map). The pair is
  bounded by `conv2d_bound(..., padding_mode=mode)`.
- **AOL rescaling** conv(z·d) with d a constant per-input-channel vector (computed from the
  weights, not from x, not random): bounded as one conv with the weight's input channels scaled
  by d (not ‖conv‖·max|d|).

Anything else: the general convolution rule.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from robustbench_lip.lipschitz.bounds.conv import conv2d_bound
from robustbench_lip.lipschitz.bounds.rules import linear
from robustbench_lip.lipschitz.bounds.rules.registry import OpContext, opname, register_rule

Node = torch.fx.Node
MOVE_OPS = frozenset(
    {
        "aten.slice.Tensor",
        "aten.slice_scatter.default",
        "aten.copy.default",
        "aten.clone.default",
        "aten.alias.default",
    }
)
CAT = "aten.cat.default"
EMPTY_OPS = {"aten.new_empty.default", "aten.empty_like.default", "aten.empty.memory_format"}
PAD_OPS = {"aten.reflection_pad2d.default": "reflect", "aten.replication_pad2d.default": "replicate"}


def _chain(ctx: OpContext, p: Node, moves: frozenset[str] = MOVE_OPS) -> tuple[list[Node], Node] | None:
    """The entry-moving chain (ops in `moves`) that computes p from one x-dependent node z: (chain
    nodes in graph order, z), or None when p's x-dependence comes through anything else."""
    chain: set[Node] = set()
    sources: set[Node] = set()
    stack = [p]
    while stack:
        n = stack.pop()
        if n in chain:
            continue
        t = opname(n)
        if t in moves or t in EMPTY_OPS:
            chain.add(n)
            if t in EMPTY_OPS:
                continue  # reads only its argument's shape
            for a in n.all_input_nodes:
                if ctx.depends(a):
                    stack.append(a)
                elif not ctx.is_constant(a):
                    return None
        elif ctx.depends(n):
            sources.add(n)
    if len(sources) != 1 or p not in chain:
        return None
    order = {n: i for i, n in enumerate(p.graph.nodes)}
    return sorted(chain, key=order.__getitem__), next(iter(sources))


def _replay(ctx: OpContext, nodes: list[Node], z: Node, zval: torch.Tensor) -> torch.Tensor | None:
    """Evaluate the chain with z := zval (float64) and never-written entries NaN."""
    env: dict[Node, Any] = {z: zval}

    def sub(a: Any) -> Any:
        if isinstance(a, Node):
            if a in env:
                return env[a]
            v = ctx.value(a)
            return v.to(torch.float64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        if isinstance(a, (list, tuple)):
            return type(a)(sub(v) for v in a)
        return a

    for n in nodes:
        if opname(n) in EMPTY_OPS:
            env[n] = torch.full(tuple(ctx.value(n).shape), float("nan"), dtype=torch.float64)
            continue
        kwargs = {
            k: v for k, v in n.kwargs.items() if k not in ("dtype", "layout", "device", "memory_format")
        }
        env[n] = n.target(*sub(n.args), **sub(kwargs))
    out = env[nodes[-1]]
    return out if isinstance(out, torch.Tensor) else None


def _pad_of(ctx: OpContext, p: Any) -> tuple[Node, str, tuple[int, int]] | None:
    """p = pad(z, (ph, ph, pw, pw) symmetric, mode): (z, mode, (ph, pw)) or None."""
    if not isinstance(p, Node) or len(p.users) != 1:
        return None
    t = opname(p)
    if t in PAD_OPS:
        z, pad = p.args[0], [int(v) for v in p.args[1]]
        if len(pad) == 4 and pad[0] == pad[1] and pad[2] == pad[3] and ctx.depends(z):
            return z, PAD_OPS[t], (pad[2], pad[0])
        return None
    found = _chain(ctx, p) or _chain(ctx, p, MOVE_OPS | {CAT})  # a cat is z itself, or a padding step
    if found is None:
        return None
    nodes, z = found
    zv, pv = ctx.value(z), ctx.value(p)
    if not (isinstance(zv, torch.Tensor) and isinstance(pv, torch.Tensor)) or zv.dim() != 4:
        return None
    if tuple(zv.shape[:2]) != tuple(pv.shape[:2]) or zv.numel() >= 2**40:
        return None
    dh, dw = pv.shape[2] - zv.shape[2], pv.shape[3] - zv.shape[3]
    if dh < 0 or dw < 0 or dh % 2 or dw % 2 or dh + dw == 0:  # no padding: the plain conv rule
        return None
    # two sets of distinct values: an entry copied from a constant cannot match both
    marks = torch.arange(1, zv.numel() + 1, dtype=torch.float64).reshape(zv.shape)
    runs = []
    for zval in (marks, -3.0 * marks - 0.5):
        try:
            out = _replay(ctx, nodes, z, zval)
        except Exception:
            return None
        if out is None or tuple(out.shape) != tuple(pv.shape):
            return None
        runs.append((zval, out))
    pad = (dw // 2, dw // 2, dh // 2, dh // 2)
    for mode in ("circular", "reflect", "replicate"):
        try:
            if all(torch.equal(out, F.pad(zval, pad, mode=mode)) for zval, out in runs):
                return z, mode, (dh // 2, dw // 2)
        except Exception:
            continue
    return None


def _fold_bn(ctx: OpContext, w: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The weight with an eval BatchNorm that only this conv feeds folded in (as the plain conv rule
    does; the BatchNorm is then marked folded), and a note."""
    scale = linear._fold_scale(ctx, int(w.shape[0]))
    if scale is None:
        return w, ""
    return w * scale.view(-1, 1, 1, 1).to(w), " (BatchNorm folded)"


def _padded_conv(ctx: OpContext) -> float | None:
    """conv(pad(z, mode)) with zero conv padding, bounded as one padded conv."""
    a = list(ctx.node.args)
    if len(a) != 9 or bool(a[6]) or ctx.depends(a[1]) or ctx.depends(a[2]) or any(int(v) for v in a[4]):
        return None
    found = _pad_of(ctx, a[0])
    if found is None:
        return None
    z, mode, (ph, pw) = found
    w, zv = ctx.value(a[1]), ctx.value(z)
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        return None
    dil = [int(v) for v in a[5]]
    ext = (dil[0] * (w.shape[2] - 1), dil[1] * (w.shape[3] - 1))
    h, wd = int(zv.shape[2]), int(zv.shape[3])
    if mode == "circular" and (2 * ph > ext[0] or 2 * pw > ext[1] or ext[0] >= h or ext[1] >= wd):
        return None  # an output row would repeat, or the kernel would wrap: not one circular conv
    w64, bn = _fold_bn(ctx, w.detach().to(torch.float64))
    b, method = conv2d_bound(w64, (h, wd), list(a[3]), [ph, pw], dil, int(a[8]), mode, ctx.mode)
    ctx.note(f"{mode}-padded conv as one operator: {method}{bn}")
    return b * ctx.lip(z)


def _scaled_conv(ctx: OpContext) -> float | None:
    """conv(z·d) with d a constant per-input-channel vector (AOL's rescaling): one conv with the
    weight's input channels scaled by d."""
    a = list(ctx.node.args)
    u = a[0] if len(a) == 9 else None
    if u is None or bool(a[6]) or opname(u) != "aten.mul.Tensor" or ctx.depends(a[1]) or ctx.depends(a[2]):
        return None
    x0, x1 = u.args
    z, d = (x0, x1) if ctx.depends(x0) and not ctx.depends(x1) else (x1, x0)
    if not ctx.depends(z) or not isinstance(d, Node) or not ctx.is_constant(d):
        return None
    w, zv, dv = ctx.value(a[1]), ctx.value(z), ctx.value(d)
    if not all(isinstance(v, torch.Tensor) for v in (w, zv, dv)) or w.dim() != 4 or zv.dim() != 4:
        return None
    if dv.dim() > 4 or tuple(ctx.value(u).shape) != tuple(zv.shape):
        return None
    shape = [1] * (4 - dv.dim()) + list(dv.shape)
    c = int(zv.shape[1])
    if shape[0] != 1 or shape[2] != 1 or shape[3] != 1 or shape[1] not in (1, c):
        return None
    dvec = dv.detach().to(torch.float64).reshape(-1).expand(c)
    groups, cig = int(a[8]), int(w.shape[1])
    og = w.shape[0] // groups
    w64, bn = _fold_bn(ctx, w.detach().to(torch.float64).clone())
    for g in range(groups):
        w64[g * og : (g + 1) * og] *= dvec[g * cig : (g + 1) * cig].view(1, -1, 1, 1)
    b, method = conv2d_bound(
        w64, tuple(zv.shape[-2:]), list(a[3]), list(a[4]), list(a[5]), groups, "zeros", ctx.mode
    )
    ctx.note(f"conv∘diag(d) as one operator (AOL rescaling): {method}{bn}")
    return b * ctx.lip(z)


@register_rule("aten.convolution.default", family=linear.FAMILY, lipschitz_args=("input",))
def convolution(ctx: OpContext) -> float:
    """Convolution: with the padding chain or per-channel scaling that feeds it when recognised,
    else the general convolution rule."""
    for pattern in (_padded_conv, _scaled_conv):
        b = pattern(ctx)
        if b is not None:
            return b
    return linear.convolution(ctx)


__all__ = ["convolution"]
