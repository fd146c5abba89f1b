"""Certified ℓ2 radii of a classifier from its last linear layer's row differences.

When the graph of x ↦ logits ends in a linear map, z = W·φ(x) + b (an `nn.Linear`, an addmm/mm with a
constant matrix, or a 1×1 convolution followed by a spatial mean — the CAM head — which is
W·mean(φ) + b), the prediction i is kept at x + δ while (z_i − z_j) − (W_i − W_j)·Δφ > 0 for all j,
and |(W_i − W_j)·Δφ| ≤ ‖W_i − W_j‖·U(φ)·‖δ‖. So the certified radius of a sample predicted i is

    r = min_{j≠i} (z_i − z_j) / (‖W_i − W_j‖ · U(φ)),

U(φ) the certified bound of the layer's input (for the CAM head: U(feature map) / √(h·w), the bound
of the mean). It replaces margin / (√2·U(A)): never larger than needed, smaller when the rows
differ by less than √2·‖W‖. `linear_head(model, shape)` recognises the structure in the exported
graph and returns U(φ) and the matrix of ‖W_i − W_j‖; when it does not, it returns `reason` and the
caller falls back to margin / (√2·U(A)) (`evaluations.lipschitz.radii.margin_radii`).

The rule relies on the rows of W being the classes of ONE sample, so recognition checks it on the
graph `upper_bound` lowered (its batch: the program's fixed batch, else 1): the logits are (N, K);
the nodes between the head and the output keep the batch and class axes (only size-1 axes dropped,
no view that folds samples or positions into the class axis); W is a constant with exactly K rows;
its input φ is one vector (CAM: one map) per sample. A single row shared by K feature vectors, or a
Linear applied at every position, is not a head: √2·U(A) is used and the record says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustbench_lip.lipschitz.bounds import Lowered
from robustbench_lip.lipschitz.bounds.graph import LoweredGraph, record_values
from robustbench_lip.lipschitz.bounds.numerics import SAFETY

_PASS_THROUGH = {"aten.view.default", "aten._unsafe_view.default", "aten.clone.default", "aten.squeeze.dims"}
_SPATIAL = ({2, 3}, {-2, -1}, {2, -1}, {-2, 3})


@dataclass
class LinearHead:
    """The last linear layer of x ↦ logits, z = W·φ + b, and the certified bound U(φ).

    lip_features: certified U(φ) (None when not recognised or unbounded; see reason); weight (K, F)
    and pair_norms (K, K) = ‖W_i − W_j‖ in float64 (times SAFETY); structure: what was recognised
    ("linear", "addmm", "mm", "conv1x1+mean"); upper: the certified U(A) of the same propagation
    (for the √2 fallback); reason: why there is no head certificate; phi_upper: the certified bound
    of φ itself (for the CAM head: of the whole feature map, before the division by √(h·w))."""

    lip_features: float | None
    weight: torch.Tensor | None
    pair_norms: torch.Tensor | None
    structure: str | None
    upper: float | None
    reason: str | None = None
    phi_upper: float | None = None

    @property
    def ok(self) -> bool:
        return self.lip_features is not None and self.pair_norms is not None


def _target(n: Any) -> str:
    return str(n.target) if isinstance(n, torch.fx.Node) and n.op == "call_function" else ""


def _const(n: Any, dep: dict[torch.fx.Node, bool], values: dict[torch.fx.Node, Any]) -> torch.Tensor | None:
    if n is None:
        return None
    if not isinstance(n, torch.fx.Node):
        return torch.as_tensor(n)
    if dep.get(n, False):
        raise ValueError(f"{n.name} depends on the input")
    v = values.get(n)
    return v if isinstance(v, torch.Tensor) else None


def _dependence(g: LoweredGraph) -> dict[torch.fx.Node, bool]:
    dep: dict[torch.fx.Node, bool] = {}
    for n in g.gm.graph.nodes:
        dep[n] = n is g.x_node or any(dep.get(a, False) for a in n.all_input_nodes)
    return dep


def _shape(values: dict[torch.fx.Node, Any], n: Any) -> tuple[int, ...] | None:
    v = values.get(n) if isinstance(n, torch.fx.Node) else None
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


def _is_class_view(shape: tuple[int, ...] | None, out: tuple[int, ...]) -> bool:
    """A pass-through whose input has the output's batch and class axes first, and only size-1 axes
    after them (keepdim means, (N, K, 1, 1) → (N, K)): nothing mixed into the class axis."""
    return shape is not None and shape[:2] == out and all(s == 1 for s in shape[2:])


def _check_rows(
    k: int, w: torch.Tensor | None, phi: tuple[int, ...] | None, out: tuple[int, ...]
) -> torch.Tensor:
    """W (K, F) with one row per class of one sample: K == the output's class count, φ (N, F)."""
    if w is None or w.dim() != 2:
        raise ValueError("the head's weight is not a constant matrix")
    if w.shape[0] != k:
        raise ValueError(f"the head has {w.shape[0]} rows for {k} classes: its rows are not the classes")
    if phi is None or len(phi) != 2 or phi[0] != out[0] or phi[1] != w.shape[1]:
        raise ValueError(f"the head's input {phi} is not one feature vector per sample (N, {w.shape[1]})")
    return w


def _linear(
    n: torch.fx.Node, t: str, dep: Any, values: Any, out: tuple[int, ...]
) -> tuple[str, Any, torch.Tensor]:
    """(structure, φ node, W (K, F)) of a Linear / addmm / mm node producing the logits."""
    k = out[1]
    if t == "aten.linear.default":
        w = _const(n.args[1], dep, values)
        _const(n.args[2] if len(n.args) > 2 else None, dep, values)
        return "linear", n.args[0], _check_rows(k, w, _shape(values, n.args[0]), out)
    a, m = (n.args[1], n.args[2]) if t == "aten.addmm.default" else (n.args[0], n.args[1])
    if t == "aten.addmm.default":
        _const(n.args[0], dep, values)
    if not dep.get(a, False) or dep.get(m, False):
        raise ValueError("the matrix product's constant factor is not on the right")
    mv = _const(m, dep, values)
    w = None if mv is None else mv.T * float(n.kwargs.get("alpha", 1.0))
    return t.split(".")[1], a, _check_rows(k, w, _shape(values, a), out)


def _cam(
    n: torch.fx.Node, dep: Any, values: Any, out: tuple[int, ...]
) -> tuple[str, Any, torch.Tensor, float]:
    """(structure, φ node, W (K, C), √(h·w)) of mean_{h,w}(conv1x1(φ))."""
    dims = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim")
    c = n.args[0]
    cv = _shape(values, c)
    if _target(c) != "aten.convolution.default" or cv is None or len(cv) != 4:
        raise ValueError("a mean that does not follow a convolution")
    if dims is None or set(int(d) for d in dims) not in _SPATIAL:
        raise ValueError("the mean is not over the two spatial axes")
    if cv[:2] != out:
        raise ValueError("the convolution's channels are not the classes of one sample")
    w = _const(c.args[1], dep, values)
    _const(c.args[2], dep, values)
    stride, padding, transposed, groups = c.args[3], c.args[4], c.args[6], c.args[8]
    if w is None or w.dim() != 4 or tuple(w.shape[2:]) != (1, 1) or transposed or int(groups) != 1:
        raise ValueError("the convolution before the mean is not a 1×1 convolution")
    if list(stride) != [1, 1] or list(padding) != [0, 0]:
        raise ValueError("the 1×1 convolution is strided or padded")
    phi = _shape(values, c.args[0])
    if phi is None or len(phi) != 4 or phi[0] != out[0] or phi[1] != w.shape[1] or phi[2:] != cv[2:]:
        raise ValueError("the 1×1 convolution's input is not one feature map per sample")
    return (
        "conv1x1+mean",
        c.args[0],
        _check_rows(out[1], w[:, :, 0, 0], (phi[0], phi[1]), out),
        math.sqrt(cv[2] * cv[3]),
    )


def _recognise(
    g: LoweredGraph, values: dict[torch.fx.Node, Any]
) -> tuple[str, torch.fx.Node, torch.Tensor, float]:
    """(structure, φ node, W (K, F), divisor of U(φ)); raises ValueError with the reason.

    Checked, not assumed: the logits are (N, K) with N the batch the graph was recorded on; every
    node between the head and the output keeps the batch and class axes (only size-1 axes dropped);
    the head's weight has exactly K constant rows; its input φ is one vector (or map) per sample."""
    dep = _dependence(g)
    n = g.out_node
    out = _shape(values, n)
    batch = _shape(values, g.x_node)
    if out is None or len(out) != 2 or batch is None or out[0] != batch[0] or out[1] < 2:
        raise ValueError("the output is not a batch of logit vectors (N, K)")
    while _target(n) in _PASS_THROUGH and _is_class_view(_shape(values, n.args[0]), out):
        n = n.args[0]
    t = _target(n)
    if t == "aten.mean.dim":
        return _cam(n, dep, values, out)
    if _shape(values, n) != out:
        raise ValueError(f"the node producing the logits ({t or n.op}) has another shape than the output")
    if t in ("aten.linear.default", "aten.addmm.default", "aten.mm.default"):
        structure, phi, w = _linear(n, t, dep, values, out)
        return structure, phi, w, 1.0
    raise ValueError(f"the graph ends in {t or n.op}, not in a linear layer")


def _mixes_samples(lowered: Lowered, phi: torch.fx.Node) -> bool:
    """On a graph recorded on B ≥ 2 samples: whether φ or the logits of sample 0 change when the
    other samples change (one more run of the graph). B = 1 cannot tell: False."""
    x = lowered.example
    if x.shape[0] < 2:
        return False
    other = x.clone()
    other[1:] = 1.0 - other[1:]
    again = record_values(lowered.graph, other)
    for node in (phi, lowered.graph.out_node):
        a, b = lowered.values.get(node), again.get(node)
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return True
        tol = 1e-5 * float(a[0].abs().max()) + 1e-6
        if float((a[0] - b[0]).abs().max()) > tol:
            return True
    return False


def pair_norms(weight: torch.Tensor) -> torch.Tensor:
    """‖W_i − W_j‖₂ (K, K) in float64, times SAFETY."""
    w = weight.detach().to(torch.float64)
    return SAFETY * torch.cdist(w, w)


def linear_head(
    model: nn.Module | torch.export.ExportedProgram,
    input_shape: Sequence[int],
    mode: str = "fast",
    lowered: Lowered | None = None,
) -> LinearHead:
    """Recognise z = W·φ(x) + b at the end of the model's graph and certify U(φ) (eval semantics;
    modes and RNG restored). lowered: the graph and bounds of `upper_bound` to reuse (no second
    export); else the model is lowered here, on a batch of the program's fixed size (or 1).
    Never raises for an unrecognised structure: `reason` says why."""
    if lowered is None:
        from robustbench_lip.lipschitz.bounds import upper_bound

        lowered = upper_bound(model, input_shape, mode=mode).lowered  # type: ignore[arg-type]
    assert lowered is not None
    g, values, prop = lowered.graph, lowered.values, lowered.prop
    upper = float(prop.out.total) if prop.out is not None else None
    try:
        structure, phi, w, divisor = _recognise(g, values)
    except ValueError as e:
        return LinearHead(None, None, None, None, upper, f"no linear head recognised: {e}")
    if _mixes_samples(lowered, phi):
        return LinearHead(None, None, None, None, upper, "no linear head recognised: its input mixes samples")
    if phi is g.x_node:
        lip = 1.0
    else:
        cum = {layer.name: layer.cumulative for layer in prop.layers}.get(phi.name)
        if cum is None:
            return LinearHead(
                None, None, None, structure, upper, f"the input of the {structure} head has no bound"
            )
        lip = float(cum)
    w64 = w.detach().to(torch.float64)
    return LinearHead(lip / divisor, w64, pair_norms(w), structure, upper, phi_upper=lip)


def head_radii(logits: torch.Tensor, head: LinearHead) -> torch.Tensor:
    """Certified ℓ2 radii (N,) float64 of the predictions argmax(logits):
    min_{j≠i} (z_i − z_j) / (‖W_i − W_j‖·U(φ)) (inf for a pair whose rows are equal and margin > 0)."""
    if not head.ok:
        raise ValueError(head.reason or "no head certificate")
    z = logits.detach().to(torch.float64)
    pred = z.argmax(1)
    margins = z.gather(1, pred[:, None]) - z  # (N, K)
    den = head.pair_norms.to(z.device)[pred] * head.lip_features  # type: ignore[index, operator]
    r = torch.where(den > 0, margins / den.clamp_min(1e-300), torch.where(margins > 0, math.inf, 0.0))
    r.scatter_(1, pred[:, None], math.inf)
    return r.amin(1)


__all__ = ["LinearHead", "head_radii", "linear_head", "pair_norms"]
