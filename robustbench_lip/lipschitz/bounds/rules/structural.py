"""Rules of the structural family: views, copies, slicing, scatters, concatenation, selection.

Re-indexings that keep every entry at most once have norm ≤ 1; broadcasting copies each entry
k times (√k); a scatter or a `where` with a constant mask combines two parts on disjoint entries
(√(L_a² + L_b²), with each part's copy count); values that depend on x only through its shape
(zeros_like, empty_like) are constants.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from robustbench_lip.lipschitz.bounds.rules.registry import (
    ANY_ARG,
    DISCRETE,
    Affine,
    NonLipschitz,
    OpContext,
    Unsupported,
    broadcast_factor,
    register_rule,
)

FAMILY = "structural"
SELF = ("self",)


def _same_shape_identity(ctx: OpContext, name: str = "self") -> Affine | float:
    b = ctx.bound(name)
    if ctx.aligned(name) and ctx.aligned(ctx.node):
        return b
    return b.total


@register_rule(
    "aten.clone.default",
    "aten.alias.default",
    "aten.detach.default",
    "aten.lift_fresh_copy.default",
    "aten.contiguous.default",
    "aten.positive.default",
    family=FAMILY,
    lipschitz_args=SELF,
)
def identity(ctx: OpContext) -> Affine | float:
    """Value-preserving copies: the input's own bound (detach too: the value is unchanged)."""
    ctx.note("identity")
    return _same_shape_identity(ctx)


@register_rule(
    "aten.view.default",
    "aten._unsafe_view.default",
    "aten.reshape.default",
    "aten.permute.default",
    "aten.transpose.int",
    "aten.t.default",
    "aten.squeeze.dim",
    "aten.squeeze.dims",
    "aten.squeeze.default",
    "aten.unsqueeze.default",
    "aten.flip.default",
    "aten.roll.default",
    "aten.slice.Tensor",
    "aten.select.int",
    "aten.narrow.default",
    "aten.diagonal.default",
    "aten.as_strided.default",
    family=FAMILY,
    lipschitz_args=SELF,
)
def reindex(ctx: OpContext) -> Affine | float:
    """Reshapes, permutations and sub-selections: each entry kept at most once, norm ≤ 1."""
    if ctx.op == "aten.as_strided.default":
        raise Unsupported("as_strided may repeat entries; no rule")
    ctx.note("re-index")
    if ctx.op in (
        "aten.view.default",
        "aten._unsafe_view.default",
        "aten.reshape.default",
        "aten.slice.Tensor",
    ):
        return _same_shape_identity(ctx)
    return ctx.lip("self")


@register_rule(
    "aten.expand.default", "aten.repeat.default", "aten.tile.default", family=FAMILY, lipschitz_args=SELF
)
def expand(ctx: OpContext) -> float:
    """Broadcasting copies: each entry copied k = numel(out)/numel(in) times, √k."""
    k = broadcast_factor(ctx.arg("self"), ctx.out)
    ctx.note(f"broadcast √{k * k:.6g}")
    return k * ctx.lip("self")


def _exact_round_trip(ctx: OpContext, dt: torch.dtype) -> bool:
    """The cast undoes an up-cast of a value that was already of dtype dt (exact, no rounding)."""
    raw = ctx.raw("self")
    if not isinstance(raw, torch.fx.Node) or str(raw.target) != "aten._to_copy.default":
        return False
    inner = raw.args[0] if raw.args else None
    v = ctx.value(inner)
    return isinstance(v, torch.Tensor) and v.dtype == dt


@register_rule("aten._to_copy.default", family=FAMILY, lipschitz_args=SELF)
def to_copy(ctx: OpContext) -> Affine | float:
    """Casts: device moves and casts to a floating type at least as precise are the identity; casts
    to lower precision or to integers round, which is not Lipschitz."""
    src = ctx.arg("self")
    dt = ctx.arg("dtype")
    if dt is not None and isinstance(src, torch.Tensor) and dt != src.dtype:
        if not (dt.is_floating_point or dt.is_complex):
            raise NonLipschitz(f"cast to {dt} (rounding to integers) is not Lipschitz")
        lower_precision = torch.finfo(dt).eps > torch.finfo(src.dtype).eps or (
            torch.finfo(dt).max < torch.finfo(src.dtype).max
        )
        if lower_precision and not _exact_round_trip(ctx, dt):
            raise NonLipschitz(f"cast from {src.dtype} to lower precision {dt} (rounding) is not Lipschitz")
    ctx.note("cast (exact)")
    return _same_shape_identity(ctx)


@register_rule("aten.copy.default", family=FAMILY, lipschitz_args=ANY_ARG)
def copy(ctx: OpContext) -> float:
    """Functional copy_(self, src): the result is src broadcast to self's shape and cast to self's
    dtype (self's values do not matter); a cast that rounds is not Lipschitz."""
    ctx.note("copy")
    if not ctx.depends("src"):
        return 0.0
    src, dst = ctx.arg("src"), ctx.arg("self")
    if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor) and dst.dtype != src.dtype:
        lossless = (dst.dtype.is_floating_point or dst.dtype.is_complex) and (
            torch.finfo(dst.dtype).eps <= torch.finfo(src.dtype).eps
            and torch.finfo(dst.dtype).max >= torch.finfo(src.dtype).max
        )
        if not lossless:
            raise NonLipschitz(f"copy from {src.dtype} into {dst.dtype} rounds, which is not Lipschitz")
    return broadcast_factor(ctx.arg("src"), ctx.out) * ctx.lip("src")


def _two_parts(la: float, lb: float) -> float:
    return math.sqrt(la * la + lb * lb)


@register_rule(
    "aten.slice_scatter.default",
    "aten.select_scatter.default",
    "aten.diagonal_scatter.default",
    family=FAMILY,
    lipschitz_args=("self", "src"),
)
def scatter(ctx: OpContext) -> float:
    """Write src into a region of self: the two parts cover disjoint entries, √(L_self² + L_src²)."""
    ctx.note("scatter √(L²+L²)")
    return _two_parts(ctx.lip("self"), ctx.lip("src"))


@register_rule(
    "aten.index_put.default",
    "aten._unsafe_index_put.default",
    family=FAMILY,
    lipschitz_args=("self", "values"),
)
def index_put(ctx: OpContext) -> float:
    """self[indices] = values with constant indices (no accumulation): √(L_self² + k·L_values²),
    k the number of positions that one entry of values is broadcast to."""
    if ctx.arg("accumulate"):
        raise Unsupported("index_put with accumulation")
    vals = ctx.arg("values")
    idx = [i for i in ctx.arg("indices") if i is not None]
    positions = 1
    if idx:
        positions = int(torch.broadcast_shapes(*[tuple(i.shape) for i in idx]).numel())
    self_v = ctx.arg("self")
    rest = int(torch.tensor(self_v.shape[len(ctx.arg("indices")) :]).prod()) if self_v.dim() else 1
    for i, ix in enumerate(ctx.arg("indices")):
        if ix is None:
            rest *= int(self_v.shape[i])
    k = max(1.0, positions * rest / max(1, vals.numel()))
    ctx.note("index_put")
    return _two_parts(ctx.lip("self"), math.sqrt(k) * ctx.lip("values") if ctx.depends("values") else 0.0)


@register_rule("aten.index.Tensor", "aten._unsafe_index.Tensor", family=FAMILY, lipschitz_args=SELF)
def index(ctx: OpContext) -> float:
    """Gather with constant (declared) indices: √(most times one entry is picked)."""
    x = ctx.arg("self")
    ids = ctx.arg("indices")
    # count how often each source entry is read: gather a tensor of entry ids, then count them
    ar = torch.arange(x.numel(), device=x.device).view(x.shape)
    picked = torch.ops.aten.index.Tensor(ar, ids)
    c = int(torch.bincount(picked.flatten(), minlength=x.numel()).max()) if picked.numel() else 0
    ctx.note(f"gather √{c}")
    return math.sqrt(c) * ctx.lip("self")


def _source_and_count(
    ctx: OpContext, name: str, mask: torch.Tensor | None, out: torch.Tensor
) -> tuple[float, int]:
    """(bound of the value's source, most selected copies of one source entry). Looks through an
    `expand` (its input is the source), since where(c, expand(u), b) depends on u alone."""
    raw = ctx.raw(name)
    if not isinstance(raw, torch.fx.Node) or not ctx.depends(raw):
        return 0.0, 0
    src = raw
    if str(raw.target) == "aten.expand.default" and isinstance(raw.args[0], torch.fx.Node):
        src = raw.args[0]
    sv = ctx.value(src)
    lip = ctx.lip(src)
    sel = (
        torch.ones(out.shape, dtype=torch.float64)
        if mask is None
        else mask.expand(out.shape).to(torch.float64)
    )
    shape = tuple(sv.shape) if isinstance(sv, torch.Tensor) else ()
    shape = (1,) * (out.dim() - len(shape)) + shape
    dims = [i for i, (s, o) in enumerate(zip(shape, out.shape, strict=True)) if s == 1 and o != 1]
    counts = sel.sum(dim=dims) if dims else sel
    return lip, int(counts.max()) if counts.numel() else 0


@register_rule("aten.where.self", family=FAMILY, lipschitz_args=("self", "other"))
def where(ctx: OpContext) -> float:
    """where(c, a, b) with a constant (declared) condition: entries of a where c, of b elsewhere:
    √(k_a·L_a² + k_b·L_b²), k the most selected copies of one source entry."""
    c = ctx.arg("condition").to(torch.bool)
    out = ctx.out
    la, ka = _source_and_count(ctx, "self", c, out)
    lb, kb = _source_and_count(ctx, "other", ~c, out)
    ctx.note("where (constant mask)")
    return math.sqrt(ka * la * la + kb * lb * lb)


def cat(ctx: OpContext) -> float:
    """Concatenation of disjoint blocks: √(Σ L_i²) (registered for aten.cat in `constrained`, which
    delegates here outside its patterns)."""
    ls = [ctx.lip(t) for t in ctx.raw("tensors") if isinstance(t, torch.fx.Node) and ctx.depends(t)]
    ctx.note("concat √ΣL²")
    return math.sqrt(sum(v * v for v in ls))


@register_rule(
    "aten.split.Tensor",
    "aten.split_with_sizes.default",
    "aten.unbind.int",
    "aten.chunk.default",
    family=FAMILY,
    lipschitz_args=SELF,
)
def split(ctx: OpContext) -> tuple[float, ...]:
    """Splits: each piece a sub-selection, ≤ 1."""
    lx = ctx.lip("self")
    ctx.note("split")
    return tuple(lx for _ in ctx.out)


@register_rule("getitem", family=FAMILY, lipschitz_args=ANY_ARG)
def getitem(ctx: OpContext) -> Any:
    """Item of a multi-output op: the bound its rule gave that output; NonLipschitz for a discrete
    output (indices)."""
    src, idx = ctx.node.args[0], ctx.node.args[1]
    b = ctx.bounds.get(src)
    if isinstance(b, tuple):
        e = b[idx]
        if e is DISCRETE:
            raise NonLipschitz(f"output {idx} of {src.name} takes discrete values (indices), not Lipschitz")
        if e is None:
            raise Unsupported(f"output {idx} of {src.name} (e.g. pooling indices) has no bound")
        ctx.note("item")
        return e
    raise Unsupported("getitem on a tensor")


@register_rule(
    "aten.zeros_like.default",
    "aten.ones_like.default",
    "aten.empty_like.default",
    "aten.full_like.default",
    "aten.new_zeros.default",
    "aten.new_ones.default",
    "aten.new_empty.default",
    "aten.new_full.default",
    "aten.sym_size.int",
    "aten._assert_tensor_metadata.default",
    family=FAMILY,
    lipschitz_args=("self", "a"),
)
def shape_only(ctx: OpContext) -> float:
    """Values that depend on x only through its (fixed) shape: constants (a fill value from x is
    refused by the registry: only `self`/`a` is declared)."""
    ctx.note("shape only")
    return 0.0


@register_rule("aten.amax.default", "aten.amin.default", family=FAMILY, lipschitz_args=SELF)
def amax(ctx: OpContext) -> float:
    """Max/min over entries: |max a − max b| ≤ max|a − b| ≤ ‖a − b‖, so 1."""
    ctx.note("max over entries")
    return ctx.lip("self")


@register_rule(
    "aten.max.dim",
    "aten.min.dim",
    "aten.sort.default",
    "aten.topk.default",
    family=FAMILY,
    lipschitz_args=SELF,
)
def sorted_values(ctx: OpContext) -> tuple[float, float | str]:
    """(values, indices) of max/min along a dim, sort, top-k: sorting is 1-Lipschitz in ℓ2; the
    indices are discrete (DISCRETE), unless the axis has one entry (always index 0)."""
    ctx.note("order statistics")
    x = ctx.arg("self")
    d = int(ctx.arg("dim"))
    single = isinstance(x, torch.Tensor) and (x.dim() == 0 or x.shape[d] == 1)
    return (ctx.lip("self"), 0.0 if single else DISCRETE)
