"""Rules for the building blocks of 1-Lipschitz networks, as they appear after export.

- **MaxMin / GroupSort** (Anil, Lucas & Grosse 2019; Chernodub & Nowicki 2016): a pair
  (max(a, b), min(a, b)) is a sort of (a, b), so ‖Δ(max, min)‖ ≤ ‖Δ(a, b)‖; when a and b are disjoint
  parts of one tensor z (split / slices along one axis), ‖Δ(a, b)‖ ≤ ‖Δz‖. orthogonium's MaxMin
  exports as split → maximum, minimum → cat; deel-torchlip's GroupSort2 as view → min.dim, max.dim →
  cat. Without these rules each of max and min costs √2 and their concatenation 2.
- **Centering** z − mean(z) over some axes (LayerCentering) is an orthogonal projection: norm 1,
  where the plain sum rule gives 2.
- Orthogonal / normalised convolutions and linear layers need no rule of their own: their weights
  are computed in the graph from the parameters (constants), and the convolution / linear rules
  bound the operator from those actual values.

These are the registered rules of `aten.cat`, `aten.maximum`, `aten.minimum`, `aten.sub` and
`aten.add` (the SLL residual step, `rules.sll`): each looks for its pattern and otherwise delegates to
the general function of its family (`structural.cat`, `activations.maximum`, `linear.sub`,
`linear.add`), which is not registered itself.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch

from robustbench_lip.lipschitz.bounds.rules import activations, linear, sll, structural
from robustbench_lip.lipschitz.bounds.rules.registry import ANY_ARG, Affine, OpContext, register_rule

Part = tuple[torch.fx.Node, int, int, int]  # (source, dim, start, stop): a slice of source along dim


def _dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _part(ctx: OpContext, a: Any) -> Part | None:
    """a as a contiguous slice of another node along one axis: getitem(split(z, ...), i) or
    slice(z, dim, start, stop, step 1); None for anything else."""
    if not isinstance(a, torch.fx.Node) or a.op != "call_function":
        return None
    if a.target is __import__("operator").getitem:
        src, i = a.args[0], a.args[1]
        if not isinstance(src, torch.fx.Node) or str(src.target) != "aten.split.Tensor":
            return None
        z = src.args[0]
        zv = ctx.value(z)
        if not isinstance(zv, torch.Tensor) or not isinstance(i, int):
            return None
        size = src.args[1]
        d = _dim(int(src.args[2]) if len(src.args) > 2 else int(src.kwargs.get("dim", 0)), zv.dim())
        if not isinstance(size, int) or size <= 0:
            return None
        start = i * size
        return (z, d, start, min(start + size, int(zv.shape[d])))
    if str(a.target) == "aten.slice.Tensor":
        z = a.args[0]
        zv = ctx.value(z)
        if not isinstance(zv, torch.Tensor):
            return None
        args = list(a.args) + [None] * (5 - len(a.args))
        d = _dim(int(args[1] if args[1] is not None else 0), zv.dim())
        step = 1 if args[4] is None else int(args[4])
        if step != 1:
            return None
        n = int(zv.shape[d])
        start, stop = (0 if args[2] is None else int(args[2])), (n if args[3] is None else int(args[3]))
        start, stop = (start + n if start < 0 else start), (stop + n if stop < 0 else stop)
        return (z, d, max(0, min(start, n)), max(0, min(stop, n)))
    return None


def _joint(
    ctx: OpContext, nodes: list[Any], mult: dict[torch.fx.Node, int] | None = None
) -> tuple[float, bool]:
    """Certified bound on ‖Δ(n_1, …, n_k)‖ jointly, and whether slices were merged: nodes that are
    pairwise disjoint slices of one source z along one axis count as one part with bound L(z); the
    parts combine as √ΣL². mult: how many times each node appears (a part whose members appear up to
    m times costs m·L², since Σ m_i·Δ_i² ≤ max m · ΣΔ_i²)."""
    mult = mult or {}
    groups: dict[tuple[torch.fx.Node, int], list[tuple[int, int, int]]] = {}
    total = 0.0
    for n in dict.fromkeys(nodes):  # each distinct node once, with its multiplicity
        if not ctx.depends(n):
            continue
        m = mult.get(n, 1)
        p = _part(ctx, n)
        if p is None:
            total += m * ctx.lip(n) ** 2
            continue
        z, d, start, stop = p
        spans = groups.setdefault((z, d), [])
        if any(start < e and s < stop for s, e, _ in spans):  # overlapping: no sharing, count it alone
            total += m * ctx.lip(n) ** 2
            continue
        spans.append((start, stop, m))
    merged = False
    for (z, _d), spans in groups.items():
        total += max(m for _, _, m in spans) * ctx.lip(z) ** 2
        merged = merged or len(spans) > 1
    return math.sqrt(total), merged


def _same_shapes(ctx: OpContext, *names: str) -> bool:
    shapes = {tuple(ctx.arg(n).shape) for n in names if isinstance(ctx.arg(n), torch.Tensor)}
    return len(shapes) == 1 and tuple(ctx.out.shape) in shapes


@register_rule(
    "aten.maximum.default",
    "aten.minimum.default",
    family=activations.FAMILY,
    lipschitz_args=("self", "other"),
)
def maximum(ctx: OpContext) -> float:
    """max(a, b) / min(a, b) elementwise: |Δ| ≤ max(|Δa|, |Δb|) ≤ ‖(Δa, Δb)‖ entrywise, so the joint
    bound of (a, b) (L(z) when a, b are disjoint slices of z); with broadcasting, the general rule."""
    if ctx.depends("self") and ctx.depends("other") and _same_shapes(ctx, "self", "other"):
        ctx.note("max/min of two parts √(joint)")
        return _joint(ctx, [ctx.raw("self"), ctx.raw("other")])[0]
    return activations.maximum(ctx)


def _sort_pair_key(ctx: OpContext, n: Any) -> tuple[Any, ...] | None:
    """A key shared by exactly the two halves of one 2-sort: maximum(a, b) / minimum(a, b) → the
    unordered pair {a, b}; getitem(max.dim(v, d, keepdim), 0) / min.dim → (v, d, keepdim)."""
    if not isinstance(n, torch.fx.Node) or n.op != "call_function":
        return None
    t = str(n.target)
    if t in ("aten.maximum.default", "aten.minimum.default") and len(n.args) == 2:
        a, b = n.args
        shapes = {tuple(v.shape) if isinstance(v, torch.Tensor) else None for v in ctx.value([a, b, n])}
        if isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node) and a is not b and len(shapes) == 1:
            return ("pair", frozenset((a, b)), "max" if "maximum" in t else "min")
        return None
    if n.target is __import__("operator").getitem and n.args[1] == 0:
        src = n.args[0]
        if isinstance(src, torch.fx.Node) and str(src.target) in ("aten.max.dim", "aten.min.dim"):
            keep = bool(src.args[2]) if len(src.args) > 2 else bool(src.kwargs.get("keepdim", False))
            kind = "max" if "max" in str(src.target) else "min"
            return ("reduce", (src.args[0], int(src.args[1]), keep), kind)
    return None


@register_rule("aten.cat.default", family=structural.FAMILY, lipschitz_args=ANY_ARG)
def cat(ctx: OpContext) -> float:
    """Concatenation √ΣL² over its parts, where a part is one tensor, or the two halves (max, min)
    of one 2-sort (MaxMin, GroupSort2: bounded by the joint bound of what they sort, L(z) for two
    slices of z, L(v) for max/min over one axis of v), or disjoint slices of one tensor z (L(z)).
    A part whose members are repeated up to m times in the list costs m·L² (each copy counts)."""
    tensors = [t for t in ctx.raw("tensors") if isinstance(t, torch.fx.Node) and ctx.depends(t)]
    mult = Counter(tensors)
    halves: dict[tuple[Any, ...], dict[str, torch.fx.Node]] = {}
    for t in mult:
        key = _sort_pair_key(ctx, t)
        if key is not None:
            halves.setdefault(key[:2], {}).setdefault(key[2], t)
    used: set[torch.fx.Node] = set()
    sq = 0.0
    for key, h in halves.items():
        if len(h) != 2:
            continue
        used |= set(h.values())
        m = max(mult[v] for v in h.values())
        if key[0] == "pair":
            sq += m * _joint(ctx, list(key[1]))[0] ** 2
        else:
            sq += m * ctx.lip(key[1][0]) ** 2
    rest_norm, merged = _joint(ctx, [t for t in tensors if t not in used], mult)
    if not used and not merged:
        return structural.cat(ctx)
    ctx.note("concat with 2-sorts (MaxMin/GroupSort) or disjoint slices √ΣL²")
    return math.sqrt(sq + rest_norm**2)


def _centering_source(ctx: OpContext) -> torch.fx.Node | None:
    """z when this node is z − mean(z, dims, keepdim=True) with alpha 1."""
    a, m = ctx.raw("self"), ctx.raw("other")
    if ctx.arg("alpha") not in (None, 1, 1.0):
        return None
    if not isinstance(m, torch.fx.Node) or str(m.target) != "aten.mean.dim" or m.args[0] is not a:
        return None
    keep = bool(m.args[2]) if len(m.args) > 2 else bool(m.kwargs.get("keepdim", False))
    if not keep or m.kwargs.get("dtype") is not None:
        return None
    av, out = ctx.value(a), ctx.out
    if not isinstance(av, torch.Tensor) or tuple(av.shape) != tuple(out.shape):
        return None
    return a


@register_rule("aten.sub.Tensor", "aten.sub.Scalar", family=linear.FAMILY, lipschitz_args=("self", "other"))
def sub(ctx: OpContext) -> Affine | float:
    """a − alpha·b; z − mean(z) over some axes (centering) is an orthogonal projection: L(z)."""
    z = _centering_source(ctx) if ctx.op == "aten.sub.Tensor" else None
    if z is not None:
        ctx.note("centering (projection) ×1")
        return ctx.lip(z)
    if ctx.op == "aten.sub.Tensor" and (b := sll.sll_of_sum(ctx, -1.0)) is not None:
        return b
    return linear.sub(ctx)


@register_rule("aten.add.Tensor", "aten.add.Scalar", family=linear.FAMILY, lipschitz_args=ANY_ARG)
def add(ctx: OpContext) -> Affine | float:
    """a + alpha·b; the SLL residual step z + (−2)·Wᵀ·T·σ(W·z + b) is bounded as one (see rules.sll)."""
    if ctx.op == "aten.add.Tensor" and (b := sll.sll_of_sum(ctx, 1.0)) is not None:
        return b
    return linear.add(ctx)


__all__ = ["add", "cat", "maximum", "sub"]
