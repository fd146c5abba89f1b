"""Certified ℓ2 → ℓ2 upper bounds on the Lipschitz constant of a network, layer by layer.

The model's graph (torch.fx symbolic trace of an nn.Module, falling back to torch.export; the
graph of a `torch.export` program as is) is run once on an example input of the given shape to
learn every node's shape and every constant. Then each node gets L(node): a certified bound on
the Lipschitz constant of the map  input x ↦ node's value.  Rules (AutoLip-style composition):

- linear layers: operator norms, ‖W‖ times L(input). Conv2d: valid for the actual padding mode,
  input size, stride, dilation and groups (see `conv2d_bound`); Linear: the exact σ_max;
  ConvTranspose2d: the norm of the convolution it is the adjoint of; eval BatchNorm folded into a
  conv/linear whose only user it is, else max|γ|/√(var+eps); constant multiplication |c|
  (max|c| for tensors, with broadcasting accounted for); mean/sum reductions 1/√n and √n;
  parameter-free spatial ops (average pools, bilinear/nearest/area interpolation, padding) by the
  exact norm of their single-channel matrix (dense SVD when H·W ≤ 4096) or the Schur test
  √(‖M‖₁‖M‖∞) for these non-negative matrices;
- non-linear 1-input maps by their Lipschitz constants (ReLU 1, LeakyReLU max(1,|α|), GELU
  Φ(√2)+√2φ(√2) ≈ 1.1289, SiLU ≈ 1.0998, Tanh 1, Sigmoid 1/4, ...); max pooling √c with c the
  largest number of windows covering a pixel;
- sums add (residuals give 1 + L(branch)), concatenations give √(Σ Lᵢ²), reshapes/slices/
  dropout(eval)/identity 1, values that do not depend on x 0.

An operator not in these rules makes every node downstream unbounded (None); the unknown
operators on the way to the output are listed and the network bound is None — never skipped.
All numerical norms are computed in float64 and multiplied by SAFETY = 1 + 1e-6, which exceeds the
floating-point error of the FFTs, products and eigen/singular value solvers by orders of
magnitude at these sizes. The bound holds for inputs of the given shape (sizes fix the graph).
"""

from __future__ import annotations

import logging
import math
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.errors import RlipError

log = logging.getLogger(__name__)

SAFETY = 1.0 + 1e-6
Mode = Literal["fast", "tight"]
DENSE_SPATIAL_MAX = 4096  # single-channel H·W up to which spatial linear ops get an exact dense SVD
DENSE_CONV_MAX = {"fast": 0, "tight": 2304}  # per-group c_in·H·W up to which a conv gets a dense SVD


def _gelu_constant() -> float:
    # d/dx xΦ(x) = Φ(x) + xφ(x); its maximum is at x = √2 (second derivative φ(x)(2 − x²)).
    r2 = math.sqrt(2.0)
    phi = math.exp(-1.0) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + math.erf(1.0)) + r2 * phi


def _grid_max_abs_derivative(fn: Callable[[torch.Tensor], torch.Tensor], lo: float, hi: float) -> float:
    """max |f'| on a fine grid over [lo, hi] plus a margin covering the grid error (|f''| ≤ 1 here).

    Used for smooth activations whose derivative tends to its limits outside [lo, hi]."""
    step = 1e-4
    x = torch.arange(lo, hi + step, step, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return float(g.abs().max()) + step


GELU_LIP = _gelu_constant() * (1 + 1e-12)
GELU_TANH_LIP = _grid_max_abs_derivative(lambda x: F.gelu(x, approximate="tanh"), -20, 20)
SILU_LIP = _grid_max_abs_derivative(F.silu, -40, 40)  # ≈ 1.0998
MISH_LIP = _grid_max_abs_derivative(F.mish, -40, 40)  # ≈ 1.089


# ----------------------------------------------------------------------------------------------
# layer bounds
# ----------------------------------------------------------------------------------------------


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1])) if len(v) in (1, 2) else (int(v[0]), int(v[1]))
    return (int(v), int(v))


def _padding4(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) from an int, a pair, or 'valid' / 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise RlipError(f"unknown conv padding {padding!r}")
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def _spectral_norm_dense(m: torch.Tensor) -> float:
    """Exact σ_max of a (batch of) real/complex matrices, float64, max over the batch."""
    if m.numel() == 0:
        return 0.0
    return float(
        torch.linalg.matrix_norm(m.to(torch.complex128 if m.is_complex() else torch.float64), 2).max()
    )


def _freq_sigma_max(a: torch.Tensor) -> float:
    """max over the batch of σ_max of complex matrices a (B, m, n), certified.

    Small Grams: exact eigvalsh. Larger: a batched power iteration gives t ≈ max λ_max(AᴴA); a
    successful Cholesky of (t − η)I − AᴴA then certifies λ_max < t for that matrix (η covers the
    Cholesky backward error 2n(n+1)u(t + ‖G‖_F)); the matrices that fail get an exact eigvalsh.
    """
    a = a.to(torch.complex128)
    if a.shape[-2] < a.shape[-1]:
        a = a.mH
    n = a.shape[-1]
    if n == 1:
        return float(a.abs().pow(2).sum(-2).max().sqrt())
    g = a.mH @ a
    if n <= 64:
        return float(torch.linalg.eigvalsh(g)[..., -1].clamp_min(0).max().sqrt())
    gen = torch.Generator(device=g.device).manual_seed(0)
    v = torch.randn(g.shape[0], n, 1, dtype=torch.float64, generator=gen, device=g.device).to(g.dtype)
    for _ in range(30):
        v = g @ v
        v = v / v.norm(dim=-2, keepdim=True).clamp_min(1e-300)
    mu = (v.mH @ g @ v).real.flatten()
    t = float(mu.max()) * (1 + 2e-3)
    fro = torch.linalg.matrix_norm(g, "fro")
    eta = 2 * n * (n + 1) * torch.finfo(torch.float64).eps * (t + fro)
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    m = (t - eta).view(-1, 1, 1).to(g.dtype) * eye - g
    _, info = torch.linalg.cholesky_ex(m)
    bad = info != 0
    best = t if bool((~bad).any()) else 0.0
    if bool(bad.any()):
        best = max(best, float(torch.linalg.eigvalsh(g[bad])[..., -1].max()))
    return math.sqrt(max(best, 0.0))


def _dilate(weight: torch.Tensor, dilation: tuple[int, int]) -> torch.Tensor:
    dh, dw = dilation
    if dh == 1 and dw == 1:
        return weight
    kh, kw = weight.shape[-2:]
    out = weight.new_zeros(*weight.shape[:-2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[..., ::dh, ::dw] = weight
    return out


def _circular_bound(kernel: torch.Tensor, grid: tuple[int, int]) -> float:
    """‖circular convolution on a grid‖ for kernels (G, c_out, c_in, kh, kw): max over groups and
    frequencies of σ_max of the c_out×c_in kernel transform. Taps wrap (fold) when the kernel is
    larger than the grid."""
    mh, mw = grid
    kh, kw = kernel.shape[-2:]
    k = kernel.to(torch.float64)
    if kh > mh or kw > mw:  # fold taps modulo the grid
        folded = k.new_zeros(*k.shape[:-2], min(kh, mh), min(kw, mw))
        for i in range(kh):
            for j in range(kw):
                folded[..., i % mh, j % mw] += k[..., i, j]
        k = folded
    # the 2-D DFT of the (small) kernel on the grid, as a sum over taps: (G, F_h, F_w, co, ci); the
    # half-spectrum in w suffices (conjugate frequencies have the same singular values)
    kh, kw = k.shape[-2:]
    fh = torch.exp(-2j * math.pi * torch.outer(torch.arange(kh), torch.arange(mh)).to(torch.float64) / mh)
    fw = torch.exp(
        -2j * math.pi * torch.outer(torch.arange(kw), torch.arange(mw // 2 + 1)).to(torch.float64) / mw
    )
    spec = torch.einsum("goiab,au,bv->guvoi", k.to(torch.complex128), fh.to(k.device), fw.to(k.device))
    co, ci = spec.shape[-2:]
    return _freq_sigma_max(spec.reshape(-1, co, ci))


def _polyphase(kernel: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """(…, co, ci, kh, kw) kernel of a stride-s correlation → (…, co, ci·sh·sw, ⌈kh/sh⌉, ⌈kw/sw⌉)
    kernel of the equivalent stride-1 correlation on the input's polyphase components."""
    sh, sw = stride
    kh, kw = kernel.shape[-2:]
    qh, qw = -(-kh // sh), -(-kw // sw)
    kp = F.pad(kernel, (0, qw * sw - kw, 0, qh * sh - kh))
    k = torch.stack([kp[..., r::sh, t::sw] for r in range(sh) for t in range(sw)], dim=-3)
    return k.reshape(*kernel.shape[:-2][:-1], kernel.shape[-3] * sh * sw, qh, qw)


def _conv_dense_norm(
    w: torch.Tensor,
    hw: tuple[int, int],
    stride: tuple[int, int],
    pad4: tuple[int, int, int, int],
    dilation: tuple[int, int],
) -> float:
    """Exact norm of the zero-padded conv per group via its explicit matrix; w: (G, co, ci, kh, kw)."""
    g, _co, ci = w.shape[:3]
    h, wd = hw
    n = ci * h * wd
    basis = torch.eye(n, dtype=torch.float64, device=w.device).view(n, ci, h, wd)
    basis = F.pad(basis, (pad4[2], pad4[3], pad4[0], pad4[1]))
    best = 0.0
    for gi in range(g):
        out = F.conv2d(basis, w[gi].to(torch.float64), stride=stride, dilation=dilation)
        best = max(best, _spectral_norm_dense(out.reshape(n, -1)))
    return best


def conv2d_bound(
    weight: torch.Tensor,
    input_hw: tuple[int, int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    mode: Mode = "fast",
) -> tuple[float, str]:
    """Certified bound on ‖conv2d‖ (ℓ2 → ℓ2) for inputs of spatial size input_hw; returns (bound, method).

    weight: (c_out, c_in/groups, kh, kw). Zero padding: the padded input embeds isometrically into
    a circular grid large enough that no valid output wraps; a stride-s conv equals a stride-1 conv
    on the s_h·s_w polyphase components (an orthogonal re-indexing), so the bound is the exact norm
    of that circular conv: the max over frequencies of σ_max of the c_out × c_in·s_h·s_w kernel
    transform (max over groups). mode "tight" uses the exact dense operator norm instead when the
    per-group matrix is small (c_in·H·W ≤ 2304). Circular padding: exact circular norm for
    stride 1 (subsampling can only shrink it); reflect/replicate: the padding's copy norm √c times
    the bound of the unpadded conv.
    """
    if weight.dim() != 4:
        raise RlipError(f"conv2d weight must be 4-d, got shape {tuple(weight.shape)}")
    w = weight.detach()
    co, ci_g, kh, kw = w.shape
    if co % groups:
        raise RlipError(f"conv2d: {co} output channels not divisible by groups={groups}")
    stride2, dil2 = _pair(stride), _pair(dilation)
    pad4 = _padding4(padding, (kh, kw), dil2)
    wg = w.reshape(groups, co // groups, ci_g, kh, kw).to(torch.float64)
    h, wd = input_hw
    if padding_mode == "circular":
        return SAFETY * _circular_bound(_dilate(wg, dil2), (h, wd)), "circular-exact"
    extra = 1.0
    if padding_mode in ("reflect", "replicate"):
        if any(pad4):
            ones = torch.ones(1, 1, h, wd, dtype=torch.float64, requires_grad=True)
            (cnt,) = torch.autograd.grad(
                F.pad(ones, (pad4[2], pad4[3], pad4[0], pad4[1]), mode=padding_mode).sum(), ones
            )
            extra = math.sqrt(float(cnt.max()))
            h, wd = h + pad4[0] + pad4[1], wd + pad4[2] + pad4[3]
            pad4 = (0, 0, 0, 0)
    elif padding_mode != "zeros":
        raise RlipError(f"conv2d: unsupported padding_mode {padding_mode!r}")
    # drop taps that only ever see padding and crop input rows no output reads (exact: the conv
    # equals the trimmed conv after a crop, whose norm is ≤ 1)
    th = _active_taps(h, pad4[0], pad4[1], kh, stride2[0], dil2[0])
    tw = _active_taps(wd, pad4[2], pad4[3], kw, stride2[1], dil2[1])
    if th is None or tw is None:
        return 0.0, "empty output"
    (j0h, j1h, h, pth, pbh), (j0w, j1w, wd, plw, prw) = th, tw
    wg = wg[..., j0h : j1h + 1, j0w : j1w + 1]
    pad4 = (pth, pbh, plw, prw)
    if ci_g * h * wd <= DENSE_CONV_MAX[mode]:
        return SAFETY * extra * _conv_dense_norm(wg, (h, wd), stride2, pad4, dil2), "dense-svd"
    k = _dilate(wg, dil2)
    keh, kew = k.shape[-2:]
    hp, wp = h + pad4[0] + pad4[1], wd + pad4[2] + pad4[3]
    sh, sw = stride2
    if sh > 1 or sw > 1:
        k = _polyphase(k, stride2)
        grid = (max(-(-hp // sh), k.shape[-2]), max(-(-wp // sw), k.shape[-1]))
        method = "polyphase-circular-embedding"
    else:
        grid = (max(hp, keh), max(wp, kew))
        method = "circular-embedding"
    return SAFETY * extra * _circular_bound(k, grid), method


def _active_taps(n: int, p0: int, p1: int, k: int, s: int, d: int) -> tuple[int, int, int, int, int] | None:
    """For one axis: (first, last) taps that touch a real input pixel for some output, the input
    length of the window the outputs read, and its new (low, high) zero padding; None: no output."""
    n_out = (n + p0 + p1 - d * (k - 1) - 1) // s + 1
    if n_out <= 0:
        return None
    active = [j for j in range(k) if any(0 <= s * i + d * j - p0 < n for i in range(n_out))]
    if not active:
        return (0, 0, 1, 0, 0)  # every tap sees padding only: the conv is 0 (bounded by any kernel tap)
    j0, j1 = active[0], active[-1]
    start = d * j0 - p0  # input coordinate read by output 0 with tap j0
    end = s * (n_out - 1) + d * j1 - p0
    lo, hi = max(0, start), min(n - 1, end)
    return (j0, j1, hi - lo + 1, max(0, -start), max(0, end - (n - 1)))


def linear_bound(weight: torch.Tensor) -> float:
    """Exact σ_max of a Linear weight (out, in), float64, times SAFETY."""
    return SAFETY * _spectral_norm_dense(weight.detach())


def bn_scale(running_var: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Per-channel multiplier γ/√(var+eps) of an eval BatchNorm (float64)."""
    s = 1.0 / torch.sqrt(running_var.detach().to(torch.float64) + eps)
    if weight is not None:
        s = s * weight.detach().to(torch.float64)
    return s


def spatial_linear_bound(
    fn: Callable[[torch.Tensor], torch.Tensor], hw: tuple[int, int], nonnegative: bool
) -> tuple[float, str] | None:
    """Norm of a parameter-free, per-channel linear map on (N, 1, H, W) (pooling, interpolation).

    Dense SVD of its single-channel matrix when H·W ≤ DENSE_SPATIAL_MAX; else, for a matrix known
    to be non-negative, the Schur test √(‖M‖₁‖M‖∞) (column and row sums through autograd); else None.
    """
    h, w = hw
    n = h * w
    if n <= DENSE_SPATIAL_MAX:
        basis = torch.eye(n, dtype=torch.float64).view(n, 1, h, w)
        out = fn(basis).reshape(n, -1)
        return SAFETY * _spectral_norm_dense(out), "dense-svd"
    if not nonnegative:
        return None
    ones = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    y = fn(ones)
    (col,) = torch.autograd.grad(y.sum(), ones)
    return SAFETY * math.sqrt(float(col.max()) * float(y.max())), "schur-test"


def _windows_per_pixel(k: int, s: int, d: int = 1) -> int:
    return max(1, min(k, -(-(d * (k - 1) + 1) // s)))


def _adaptive_windows_per_pixel(n_in: int, n_out: int) -> int:
    cnt = [0] * n_in
    for o in range(n_out):
        a = (o * n_in) // n_out
        b = -(-((o + 1) * n_in) // n_out)
        for i in range(a, b):
            cnt[i] += 1
    return max(cnt) if cnt else 1


# ----------------------------------------------------------------------------------------------
# graph propagation
# ----------------------------------------------------------------------------------------------


@dataclass
class LayerBound:
    """One graph node's contribution: `factor` is its own Lipschitz bound (None = unknown op),
    `cumulative` the bound on input ↦ this node (None when unbounded)."""

    name: str
    op: str
    factor: float | None
    cumulative: float | None
    method: str
    out_shape: list[int] | None = None


@dataclass
class UpperBound:
    """Certified upper bound on the ℓ2 Lipschitz constant of a model at a fixed input shape.

    upper: the bound (None when an operator is unsupported); unsupported_ops: op names on the way
    to the output that the bounder does not know; layers: per-node breakdown; seconds: wall time.
    """

    upper: float | None
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    unsupported_ops: list[str]
    layers: list[LayerBound] = field(default_factory=list)
    mode: str = "fast"
    seconds: float = 0.0
    graph: str = "fx"

    def reflection_upper(self) -> float | None:
        """Trivial certified bound on R = 2A − I: 2·U(A) + 1."""
        return None if self.upper is None else 2 * self.upper + 1

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not layers:
            d.pop("layers")
        return d


class _Recorder(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[torch.fx.Node, Any] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        out = super().run_node(n)
        self.values[n] = out
        return out


def to_graph_module(model: Any, example: torch.Tensor) -> tuple[torch.fx.GraphModule, str]:
    """A GraphModule for a model: exported programs as is, GraphModules as is, nn.Modules by
    torch.fx symbolic tracing, falling back to torch.export when tracing fails."""
    if isinstance(model, torch.export.ExportedProgram):
        return model.module(), "export"
    if isinstance(model, torch.fx.GraphModule):
        return model, "fx"
    if not isinstance(model, nn.Module):
        raise RlipError(
            f"cannot bound a {type(model).__name__}; expected an nn.Module or an exported program"
        )
    try:
        return torch.fx.symbolic_trace(model), "fx"
    except Exception as e:
        log.debug("fx tracing failed (%s); trying torch.export", e)
    try:
        return torch.export.export(model, (example,), strict=False).module(), "export"
    except Exception as e:
        raise RlipError(
            f"cannot trace the model's graph (torch.fx and torch.export both failed: {e})"
        ) from None


def _target_name(n: torch.fx.Node, gm: torch.fx.GraphModule) -> str:
    if n.op == "call_module":
        return type(gm.get_submodule(n.target)).__name__
    if n.op == "call_method":
        return f"Tensor.{n.target}"
    t = n.target
    if isinstance(t, torch._ops.OpOverload):
        return str(t)
    return getattr(t, "__name__", str(t))


def _canon(target: Any) -> str:
    """A canonical op key: 'aten.<name>' for aten overloads (in-place suffix stripped), python names else."""
    if isinstance(target, torch._ops.OpOverload):
        name = target._schema.name.split("::")[-1]
        return "aten." + name
    if isinstance(target, torch._ops.OpOverloadPacket):
        return "aten." + target._qualified_op_name.split("::")[-1]
    return ""


_UNARY_CONST: dict[str, float] = {
    "relu": 1.0,
    "relu6": 1.0,
    "hardtanh": 1.0,
    "tanh": 1.0,
    "sigmoid": 0.25,
    "hardsigmoid": 1.0 / 6.0,
    "hardswish": 1.5,
    "softplus": 1.0,
    "silu": SILU_LIP,
    "mish": MISH_LIP,
    "abs": 1.0,
    "neg": 1.0,
    "clamp": 1.0,
    "clip": 1.0,
    "clamp_min": 1.0,
    "clamp_max": 1.0,
    "softmax": 1.0,
    "_softmax": 1.0,
    "contiguous": 1.0,
    "clone": 1.0,
    "alias": 1.0,
    "detach": 1.0,
    "identity": 1.0,
    "positive": 1.0,
    "to": 1.0,
    "_to_copy": 1.0,
    "type_as": 1.0,
    "float": 1.0,
}


_RESHAPE = {
    "view",
    "reshape",
    "_unsafe_view",
    "flatten",
    "unflatten",
    "permute",
    "transpose",
    "t",
    "squeeze",
    "unsqueeze",
    "movedim",
    "swapaxes",
    "expand_as_noop",
    "view_as",
    "select",
    "slice",
    "narrow",
    "split",
    "chunk",
    "unbind",
    "split_with_sizes",
    "split_tensor",
    "getitem",
    "contiguous",
    "expand_copy_noop",
    "flatten_using_ints",
    "lift_fresh_copy",
    "dropout",
    "feature_dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
}

_MODULE_UNARY: dict[type, Callable[[nn.Module], float]] = {
    nn.ReLU: lambda m: 1.0,
    nn.ReLU6: lambda m: 1.0,
    nn.LeakyReLU: lambda m: max(1.0, abs(m.negative_slope)),
    nn.ELU: lambda m: max(1.0, abs(m.alpha)),
    nn.GELU: lambda m: GELU_TANH_LIP if m.approximate == "tanh" else GELU_LIP,
    nn.SiLU: lambda m: SILU_LIP,
    nn.Mish: lambda m: MISH_LIP,
    nn.Tanh: lambda m: 1.0,
    nn.Sigmoid: lambda m: 0.25,
    nn.Hardtanh: lambda m: 1.0,
    nn.Hardsigmoid: lambda m: 1.0 / 6.0,
    nn.Hardswish: lambda m: 1.5,
    nn.Softplus: lambda m: 1.0,
    nn.Identity: lambda m: 1.0,
    nn.Flatten: lambda m: 1.0,
    nn.Unflatten: lambda m: 1.0,
    nn.Softmax: lambda m: 1.0,
}


class _Unsupported(Exception):
    pass


class _Bounder:
    def __init__(self, gm: torch.fx.GraphModule, values: dict[torch.fx.Node, Any], mode: Mode) -> None:
        self.gm = gm
        self.values = values
        self.mode = mode
        self.L: dict[torch.fx.Node, Any] = {}  # float | None | tuple
        self.dep: dict[torch.fx.Node, bool] = {}
        self.folded: dict[torch.fx.Node, torch.Tensor] = {}  # BN node -> scale (folded into producer)
        self.layers: list[LayerBound] = []
        self.unknown: dict[torch.fx.Node, str] = {}

    # --- helpers -------------------------------------------------------------------------
    def arg_L(self, a: Any) -> float | None:
        if isinstance(a, torch.fx.Node):
            v = self.L.get(a, 0.0)
            if isinstance(v, tuple):
                raise _Unsupported("tuple used as a tensor")
            return v
        return 0.0

    def depends(self, a: Any) -> bool:
        if isinstance(a, torch.fx.Node):
            return self.dep.get(a, False)
        if isinstance(a, (list, tuple)):
            return any(self.depends(x) for x in a)
        if isinstance(a, dict):
            return any(self.depends(x) for x in a.values())
        return False

    def val(self, a: Any) -> Any:
        return self.values.get(a) if isinstance(a, torch.fx.Node) else a

    def module(self, n: torch.fx.Node) -> nn.Module:
        return self.gm.get_submodule(n.target)

    def record(self, n: torch.fx.Node, op: str, factor: float | None, cum: Any, method: str) -> None:
        v = self.values.get(n)
        shape = list(v.shape) if isinstance(v, torch.Tensor) else None
        c = cum if not isinstance(cum, tuple) else (cum[0] if cum else None)
        self.layers.append(LayerBound(n.name, op, factor, c, method, shape))

    # --- BatchNorm folding ----------------------------------------------------------------
    def _bn_params(self, n: torch.fx.Node) -> tuple[torch.Tensor, torch.Tensor | None, float] | None:
        """(running_var, weight, eps) of an eval-mode BatchNorm node, else None."""
        if n.op == "call_module":
            m = self.module(n)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.training and m.running_var is not None:
                    raise _Unsupported("BatchNorm in training mode")
                if m.running_var is None:
                    return None
                return m.running_var, m.weight, m.eps
            return None
        key = _canon(n.target) if n.op == "call_function" else ""
        if n.op == "call_function" and n.target is F.batch_norm:
            args = list(n.args) + [None] * 8
            kw = n.kwargs
            rv = kw.get("running_var", args[2])
            wt = kw.get("weight", args[3])
            training = kw.get("training", args[5] if args[5] is not None else False)
            eps = kw.get("eps", args[7] if args[7] is not None else 1e-5)
            if training or rv is None:
                return None
            return self.val(rv), self.val(wt), float(eps)
        if key in ("aten.batch_norm", "aten.cudnn_batch_norm", "aten.native_batch_norm"):
            # (input, weight, bias, running_mean, running_var, training, momentum, eps, ...)
            a = n.args
            if bool(a[5]) or a[4] is None:
                return None
            return self.val(a[4]), self.val(a[1]), float(a[7])
        if key == "aten._native_batch_norm_legit_no_training":
            a = n.args  # (input, weight, bias, running_mean, running_var, momentum, eps)
            return self.val(a[4]), self.val(a[1]), float(a[6])
        return None

    def _fold_target(self, n: torch.fx.Node) -> tuple[torch.fx.Node, torch.Tensor] | None:
        """If n (a conv/linear) has one user which is an eval BN on its output → (bn node, scale)."""
        users = list(n.users)
        if len(users) != 1:
            return None
        u = users[0]
        try:
            p = self._bn_params(u)
        except _Unsupported:
            return None
        if p is None:
            return None
        first = u.args[0] if u.args else None
        if first is not n:
            return None
        rv, wt, eps = p
        return u, bn_scale(rv, wt, eps)

    # --- per-op rules ---------------------------------------------------------------------
    def conv(self, n, x, w, stride, padding, dilation, groups, padding_mode="zeros", transposed=False):
        xin = self.val(x)
        if not isinstance(xin, torch.Tensor) or xin.dim() not in (3, 4):
            raise _Unsupported("conv on a non-4-d input (conv1d/3d are not supported)")
        wt = self.val(w)
        if self.depends(w):
            raise _Unsupported("conv weight depends on the input")
        if wt.dim() != 4:
            raise _Unsupported("conv1d/conv3d are not supported")
        wt = wt.detach().to(torch.float64)
        note = ""
        fold = None if transposed else self._fold_target(n)
        if fold is not None:
            bn, scale = fold
            wt = wt * scale.view(-1, 1, 1, 1).to(wt)
            self.folded[bn] = scale
            note = f" (folded {bn.name})"
        if transposed:
            out = self.values[n]
            hw = tuple(out.shape[-2:])  # the adjoint conv acts on the output grid
        else:
            hw = tuple(xin.shape[-2:])
        b, method = conv2d_bound(wt, hw, stride, padding, dilation, groups, padding_mode, self.mode)
        return b, method + note

    def linear(self, n, w):
        if self.depends(w):
            raise _Unsupported("linear weight depends on the input")
        wt = self.val(w).detach().to(torch.float64)
        if wt.dim() == 1:
            wt = wt.view(1, -1)
        fold = self._fold_target(n)
        note = ""
        if fold is not None:
            bn, scale = fold
            if scale.numel() == wt.shape[0]:
                wt = wt * scale.view(-1, 1).to(wt)
                self.folded[bn] = scale
                note = f" (folded {bn.name})"
        return linear_bound(wt), "exact-svd" + note

    def broadcast_factor(self, a: Any, out: Any) -> float:
        va = self.val(a)
        if isinstance(va, torch.Tensor) and isinstance(out, torch.Tensor) and va.numel() > 0:
            return math.sqrt(max(1.0, out.numel() / va.numel()))
        return 1.0

    def add(self, n, a, b, alpha=1.0, sub=False):
        out = self.values[n]
        la, lb = self.arg_L(a), self.arg_L(b)
        if la is None or lb is None:
            return None, "sum"
        total = 0.0
        if self.depends(a):
            total += la * self.broadcast_factor(a, out)
        if self.depends(b):
            total += abs(float(alpha)) * lb * self.broadcast_factor(b, out)
        return total, "sum"

    def const_abs_max(self, c: Any) -> float:
        v = self.val(c)
        if isinstance(v, torch.Tensor):
            return float(v.detach().abs().max()) if v.numel() else 0.0
        return abs(float(v))

    def const_abs_min(self, c: Any) -> float:
        v = self.val(c)
        if isinstance(v, torch.Tensor):
            return float(v.detach().abs().min()) if v.numel() else math.inf
        return abs(float(v))

    def mul(self, n, a, b):
        da, db = self.depends(a), self.depends(b)
        if da and db:
            raise _Unsupported("product of two input-dependent tensors")
        x, c = (a, b) if da else (b, a)
        lx = self.arg_L(x)
        if lx is None:
            return None, "scale"
        return lx * self.const_abs_max(c) * self.broadcast_factor(x, self.values[n]), "scale |c|"

    def div(self, n, a, b):
        if self.depends(b):
            raise _Unsupported("division by an input-dependent tensor")
        la = self.arg_L(a)
        m = self.const_abs_min(b)
        if m == 0:
            raise _Unsupported("division by zero constant")
        if la is None:
            return None, "scale"
        return la / m * self.broadcast_factor(a, self.values[n]), "scale 1/min|c|"

    def reduce(self, n, x, kind: str):
        vin, vout = self.val(x), self.values[n]
        lx = self.arg_L(x)
        if lx is None:
            return None, kind
        cnt = vin.numel() / max(1, vout.numel())
        f = 1 / math.sqrt(cnt) if kind == "mean" else math.sqrt(cnt)
        return lx * f, f"{kind} over {round(cnt)}"

    def spatial(self, n, x, fn, nonneg: bool, what: str):
        vin = self.val(x)
        if not isinstance(vin, torch.Tensor) or vin.dim() < 3:
            raise _Unsupported(f"{what} on a non-spatial input")
        if vin.dim() == 3:
            raise _Unsupported(f"{what} on a 3-d input")
        r = spatial_linear_bound(fn, tuple(vin.shape[-2:]), nonneg)
        if r is None:
            raise _Unsupported(f"{what} too large for a dense bound")
        return r[0], f"{what} {r[1]}"

    def maxpool(self, x, kernel, stride, dilation=1, adaptive_out=None):
        vin = self.val(x)
        if adaptive_out is not None:
            oh, ow = _pair(adaptive_out) if adaptive_out is not None else (1, 1)
            oh = vin.shape[-2] if oh is None else oh
            ow = vin.shape[-1] if ow is None else ow
            c = _adaptive_windows_per_pixel(vin.shape[-2], oh) * _adaptive_windows_per_pixel(
                vin.shape[-1], ow
            )
        else:
            kh, kw = _pair(kernel)
            sh, sw = _pair(stride if stride not in (None, [], ()) else kernel)
            dh, dw = _pair(dilation)
            c = _windows_per_pixel(kh, sh, dh) * _windows_per_pixel(kw, sw, dw)
        return math.sqrt(c), f"max-pool √{c}"

    def cat(self, n, tensors):
        ls = []
        for t in tensors:
            if self.depends(t):
                lt = self.arg_L(t)
                if lt is None:
                    return None, "concat"
                ls.append(lt)
        return math.sqrt(sum(v * v for v in ls)), "concat √ΣL²"

    # --- dispatch -------------------------------------------------------------------------
    def rule(self, n: torch.fx.Node) -> tuple[Any, str]:
        """(L for node n, method) — raises _Unsupported for unknown ops."""
        args, kw = n.args, n.kwargs
        first = args[0] if args else None
        if n.op == "call_module":
            m = self.module(n)
            if n in self.folded:
                return self.arg_L(first), "BatchNorm folded"
            for cls, fn in _MODULE_UNARY.items():
                if type(m) is cls:
                    lx = self.arg_L(first)
                    k = fn(m)
                    return (None if lx is None else k * lx), f"×{k:.6g}"
            if isinstance(m, nn.Dropout | nn.Dropout2d | nn.Dropout1d | nn.AlphaDropout):
                if m.training and m.p > 0:
                    raise _Unsupported("dropout in training mode")
                return self.arg_L(first), "identity (eval)"
            if isinstance(m, nn.Conv2d):
                b, meth = self.conv(
                    n, first, m.weight, m.stride, m.padding, m.dilation, m.groups, m.padding_mode
                )
                return self._times(first, b), meth
            if isinstance(m, nn.ConvTranspose2d):
                if m.padding_mode != "zeros":
                    raise _Unsupported("ConvTranspose2d with non-zero padding mode")
                b, meth = self.conv(
                    n, first, m.weight, m.stride, m.padding, m.dilation, m.groups, transposed=True
                )
                return self._times(first, b), "transposed " + meth
            if isinstance(m, nn.Linear):
                b, meth = self.linear(n, m.weight)
                return self._times(first, b), meth
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                p = self._bn_params(n)
                if p is None:
                    raise _Unsupported("BatchNorm without running statistics")
                s = float(bn_scale(*p).abs().max()) * SAFETY
                return self._times(first, s), "BatchNorm max|γ|/√(var+ε)"
            if isinstance(m, nn.AvgPool2d):
                return self._spatial_times(n, first, lambda z: m(z), True, "avg-pool")
            if isinstance(m, nn.AdaptiveAvgPool2d):
                return self._spatial_times(n, first, lambda z: m(z), True, "adaptive-avg-pool")
            if isinstance(m, nn.Upsample):
                nonneg = m.mode in ("nearest", "bilinear", "area", "nearest-exact")
                return self._spatial_times(n, first, lambda z: m(z), nonneg, f"upsample-{m.mode}")
            if isinstance(m, nn.ZeroPad2d | nn.ConstantPad2d):
                return self.arg_L(first), "pad"
            if isinstance(m, nn.ReflectionPad2d | nn.ReplicationPad2d):
                return self._spatial_times(n, first, lambda z: m(z), True, type(m).__name__)
            if isinstance(m, nn.MaxPool2d):
                b, meth = self.maxpool(first, m.kernel_size, m.stride, m.dilation)
                return self._times(first, b), meth
            if isinstance(m, nn.AdaptiveMaxPool2d):
                b, meth = self.maxpool(first, None, None, adaptive_out=m.output_size)
                return self._times(first, b), meth
            raise _Unsupported(type(m).__name__)

        if n.op == "call_method":
            name = n.target
            base = name[:-1] if name.endswith("_") and not name.endswith("__") else name
            return self.generic(n, base, args, kw)

        if n.op == "call_function":
            t = n.target
            if t is operator.getitem:
                return self.getitem(n)
            key = _canon(t)
            if key:
                name = key[len("aten.") :]
                base = name[:-1] if name.endswith("_") and not name.endswith("__") else name
                return self.aten(n, base, args, kw)
            name = getattr(t, "__name__", str(t))
            return self.python_fn(n, t, name, args, kw)
        raise _Unsupported(n.op)

    def _factor(self, n: torch.fx.Node, lv: Any) -> float | None:
        """This node's own factor: L(node) / L(its input-dependent argument), for 1-input nodes."""
        if isinstance(lv, tuple):
            lv = lv[0] if lv else None
        ins = [a for a in n.all_input_nodes if self.dep.get(a, False)]
        if lv is None or len(ins) != 1:
            return None
        li = self.L.get(ins[0])
        if isinstance(li, tuple) or not li:
            return None
        return lv / li

    def _times(self, x: Any, b: float) -> float | None:
        lx = self.arg_L(x)
        return None if lx is None else lx * b

    def _spatial_times(self, n, x, fn, nonneg, what):
        b, meth = self.spatial(n, x, fn, nonneg, what)
        return self._times(x, b), meth

    def getitem(self, n: torch.fx.Node) -> tuple[Any, str]:
        src, idx = n.args
        lsrc = self.L.get(src, 0.0) if isinstance(src, torch.fx.Node) else 0.0
        if isinstance(lsrc, tuple):
            return lsrc[idx], "tuple item"
        if lsrc is None:
            return None, "index"
        if isinstance(self.val(src), torch.Tensor):
            items = idx if isinstance(idx, tuple) else (idx,)
            for it in items:
                if isinstance(it, torch.fx.Node) or isinstance(it, torch.Tensor) or isinstance(it, list):
                    if isinstance(it, torch.fx.Node) and not isinstance(self.val(it), torch.Tensor):
                        continue
                    raise _Unsupported("advanced (tensor) indexing")
            return lsrc, "slice"
        return lsrc, "item"

    def generic(self, n, base: str, args, kw) -> tuple[Any, str]:
        """Tensor methods and shared names (also used for aten ops without a special rule)."""
        first = args[0] if args else None
        if base in _UNARY_CONST:
            k = _UNARY_CONST[base]
            return self._times(first, k), f"×{k:.6g}"
        if base in _RESHAPE or base in ("expand", "repeat", "expand_as"):
            v_in, v_out = self.val(first), self.values[n]
            if base in ("expand", "repeat", "expand_as"):
                return self._times(first, self.broadcast_factor(first, v_out)), "broadcast √r"
            if base in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"):
                train = kw.get("train", kw.get("training", args[2] if len(args) > 2 else False))
                if train:
                    raise _Unsupported("dropout in training mode")
            if isinstance(v_out, (tuple, list)):
                lx = self.arg_L(first)
                return tuple(lx for _ in v_out), "split"
            _ = v_in
            return self.arg_L(first), "reshape"
        if base == "leaky_relu":
            slope = kw.get("negative_slope", args[1] if len(args) > 1 else 0.01)
            k = max(1.0, abs(float(slope)))
            return self._times(first, k), f"×{k:.6g}"
        if base == "elu":
            alpha = kw.get("alpha", args[1] if len(args) > 1 else 1.0)
            k = max(1.0, abs(float(alpha)))
            return self._times(first, k), f"×{k:.6g}"
        if base == "gelu":
            approx = kw.get("approximate", args[1] if len(args) > 1 else "none")
            k = GELU_TANH_LIP if approx == "tanh" else GELU_LIP
            return self._times(first, k), f"×{k:.6g}"
        if base in ("add", "sub", "rsub"):
            a, b = args[0], args[1]
            alpha = kw.get("alpha", args[2] if len(args) > 2 else 1.0)
            if base == "rsub":
                a, b = b, a
            return self.add(n, a, b, alpha)
        if base in ("mul", "multiply"):
            return self.mul(n, args[0], args[1])
        if base in ("div", "divide", "true_divide"):
            if kw.get("rounding_mode") is not None:
                raise _Unsupported("rounding division")
            return self.div(n, args[0], args[1])
        if base in ("mean", "sum"):
            return self.reduce(n, first, base)
        if base in ("cat", "concat", "concatenate"):
            return self.cat(n, args[0])
        if base == "stack":
            return self.cat(n, args[0])
        if base == "pad" or base == "constant_pad_nd":
            mode = kw.get("mode", args[2] if len(args) > 2 and isinstance(args[2], str) else "constant")
            if mode == "constant":
                return self.arg_L(first), "zero/constant pad"
            pad = args[1]
            return self._spatial_times(n, first, lambda z: F.pad(z, pad, mode=mode), True, f"pad-{mode}")
        raise _Unsupported(base)

    def aten(self, n, base: str, args, kw) -> tuple[Any, str]:
        first = args[0] if args else None
        if base == "elu":  # (x, alpha, scale, input_scale): slope scale (x > 0), ≤ α·scale·input_scale
            a = [*list(args), 1.0, 1.0, 1.0][1:4]
            k = max(abs(float(a[1])), abs(float(a[0]) * float(a[1]) * float(a[2])))
            return self._times(first, k), f"×{k:.6g}"
        if base in ("conv2d",):
            a = list(args) + [None] * 7
            stride = a[3] if a[3] is not None else 1
            padding = a[4] if a[4] is not None else 0
            dilation = a[5] if a[5] is not None else 1
            groups = a[6] if a[6] is not None else 1
            b, meth = self.conv(n, first, args[1], stride, padding, dilation, groups)
            return self._times(first, b), meth
        if base in ("convolution", "_convolution"):
            x, w, _b, stride, padding, dilation, transposed, _out_pad, groups = args[:9]
            b, meth = self.conv(n, x, w, stride, padding, dilation, groups, transposed=bool(transposed))
            return self._times(x, b), meth
        if base in ("conv_transpose2d",):
            a = list(args) + [None] * 8
            stride = a[3] if a[3] is not None else 1
            padding = a[4] if a[4] is not None else 0
            groups = a[6] if a[6] is not None else 1
            dilation = a[7] if a[7] is not None else 1
            b, meth = self.conv(n, first, args[1], stride, padding, dilation, groups, transposed=True)
            return self._times(first, b), "transposed " + meth
        if base == "linear":
            b, meth = self.linear(n, args[1])
            return self._times(first, b), meth
        if base in ("addmm", "mm", "matmul"):
            if base == "addmm":
                m1, m2 = args[1], args[2]
            else:
                m1, m2 = args[0], args[1]
            if self.depends(m1) and self.depends(m2):
                raise _Unsupported(f"{base} of two input-dependent tensors")
            c = m2 if self.depends(m1) else m1
            x = m1 if self.depends(m1) else m2
            cv = self.val(c)
            if not isinstance(cv, torch.Tensor) or cv.dim() > 2:
                raise _Unsupported(f"batched {base}")
            b = linear_bound(cv if cv.dim() == 2 else cv.view(1, -1))
            return self._times(x, b), "exact-svd"
        if base in (
            "batch_norm",
            "_native_batch_norm_legit_no_training",
            "native_batch_norm",
            "cudnn_batch_norm",
        ):
            p = self._bn_params(n)
            if p is None:
                raise _Unsupported("batch_norm in training mode")
            multi = base != "batch_norm"
            if n in self.folded:
                lx, meth = self.arg_L(first), "BatchNorm folded"
            else:
                s = float(bn_scale(*p).abs().max()) * SAFETY
                lx, meth = self._times(first, s), "BatchNorm max|γ|/√(var+ε)"
            if multi:
                return (lx, 0.0, 0.0), meth
            return lx, meth
        if base in (
            "avg_pool2d",
            "adaptive_avg_pool2d",
            "_adaptive_avg_pool2d",
            "upsample_bilinear2d",
            "upsample_nearest2d",
            "_upsample_nearest_exact2d",
            "_upsample_bilinear2d_aa",
            "reflection_pad2d",
            "replication_pad2d",
            "upsample_bicubic2d",
            "pad",
        ):
            if base == "pad":
                return self.generic(n, base, args, kw)
            rest, kwr = args[1:], dict(kw)
            op = n.target
            nonneg = base != "upsample_bicubic2d"
            return self._spatial_times(n, first, lambda z: op(z, *rest, **kwr), nonneg, base)
        if base in ("max_pool2d", "max_pool2d_with_indices"):
            a = list(args) + [None] * 6
            kernel = a[1]
            stride = a[2] if a[2] not in (None, []) else kernel
            dilation = a[4] if a[4] is not None else 1
            b, meth = self.maxpool(first, kernel, stride, dilation)
            lx = self._times(first, b)
            if base == "max_pool2d_with_indices":
                return (lx, None), meth
            return lx, meth
        if base in ("adaptive_max_pool2d",):
            b, meth = self.maxpool(first, None, None, adaptive_out=args[1])
            return (self._times(first, b), None), meth
        if base in ("upsample_nearest2d", "upsample_bilinear2d"):
            pass
        if base in ("flatten",):
            return self.arg_L(first), "reshape"
        if base in ("sum", "mean") and len(args) == 1:
            return self.reduce(n, first, base)
        return self.generic(n, base, args, kw)

    def python_fn(self, n, t, name: str, args, kw) -> tuple[Any, str]:
        first = args[0] if args else None
        if t is F.conv2d or t is torch.conv2d:
            a = list(args) + [None] * 7
            stride = kw.get("stride", a[3] if a[3] is not None else 1)
            padding = kw.get("padding", a[4] if a[4] is not None else 0)
            dilation = kw.get("dilation", a[5] if a[5] is not None else 1)
            groups = kw.get("groups", a[6] if a[6] is not None else 1)
            w = kw.get("weight", args[1] if len(args) > 1 else None)
            b, meth = self.conv(n, first, w, stride, padding, dilation, groups)
            return self._times(first, b), meth
        if t is F.conv_transpose2d or t is torch.conv_transpose2d:
            a = list(args) + [None] * 8
            stride = kw.get("stride", a[3] if a[3] is not None else 1)
            padding = kw.get("padding", a[4] if a[4] is not None else 0)
            groups = kw.get("groups", a[6] if a[6] is not None else 1)
            dilation = kw.get("dilation", a[7] if a[7] is not None else 1)
            b, meth = self.conv(n, first, args[1], stride, padding, dilation, groups, transposed=True)
            return self._times(first, b), "transposed " + meth
        if t is F.linear:
            b, meth = self.linear(n, kw.get("weight", args[1] if len(args) > 1 else None))
            return self._times(first, b), meth
        if t is F.batch_norm:
            p = self._bn_params(n)
            if p is None:
                raise _Unsupported("batch_norm in training mode")
            if n in self.folded:
                return self.arg_L(first), "BatchNorm folded"
            return self._times(first, float(bn_scale(*p).abs().max()) * SAFETY), "BatchNorm"
        if t in (
            F.avg_pool2d,
            F.adaptive_avg_pool2d,
            F.interpolate,
            F.upsample,
            torch.nn.functional.upsample_bilinear,
            torch.nn.functional.upsample_nearest,
        ):
            mode = kw.get("mode", "nearest")
            nonneg = t is not F.interpolate or mode in ("nearest", "bilinear", "area", "nearest-exact")
            rest, kwr = args[1:], dict(kw)
            return self._spatial_times(n, first, lambda z: t(z, *rest, **kwr), nonneg, name)
        if t is F.max_pool2d or t is torch.max_pool2d:
            a = list(args) + [None] * 6
            kernel = kw.get("kernel_size", a[1])
            stride = kw.get("stride", a[2])
            dilation = kw.get("dilation", a[4] if a[4] is not None else 1)
            if kw.get("return_indices", False):
                raise _Unsupported("max_pool2d with indices")
            b, meth = self.maxpool(first, kernel, stride if stride else kernel, dilation)
            return self._times(first, b), meth
        if t is F.adaptive_max_pool2d:
            b, meth = self.maxpool(first, None, None, adaptive_out=kw.get("output_size", args[1]))
            return self._times(first, b), meth
        if t in (F.dropout, F.dropout2d, F.dropout1d, F.alpha_dropout, torch.dropout):
            training = kw.get("training", args[2] if len(args) > 2 else True)
            if training and (kw.get("p", args[1] if len(args) > 1 else 0.5) > 0):
                raise _Unsupported("dropout in training mode")
            return self.arg_L(first), "identity (eval)"
        if t in (operator.add, operator.iadd):
            return self.add(n, args[0], args[1])
        if t in (operator.sub, operator.isub):
            return self.add(n, args[0], args[1])
        if t in (operator.mul, operator.imul):
            return self.mul(n, args[0], args[1])
        if t in (operator.truediv, operator.itruediv):
            return self.div(n, args[0], args[1])
        if t is operator.neg or t is operator.pos:
            return self.arg_L(first), "×1"
        if t is torch.flatten:
            return self.arg_L(first), "reshape"
        fname = name[:-1] if name.endswith("_") and not name.endswith("__") else name
        return self.generic(n, fname, args, kw)

    # --- main loop ------------------------------------------------------------------------
    def run(self) -> tuple[float | None, tuple[int, ...] | None, list[str]]:
        out_node = None
        x_node = None
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                if x_node is None:
                    x_node = n
                    self.dep[n] = True
                    self.L[n] = 1.0
                else:
                    self.dep[n] = False
                    self.L[n] = 0.0
                continue
            if n.op == "get_attr":
                self.dep[n], self.L[n] = False, 0.0
                continue
            if n.op == "output":
                out_node = n
                continue
            dep = self.depends(list(n.args)) or self.depends(dict(n.kwargs))
            self.dep[n] = dep
            v = self.values.get(n)
            if not dep:
                self.L[n] = 0.0
                continue
            if not _has_float_tensor(v):
                if isinstance(v, torch.Tensor):  # discrete (integer/bool) values of x: not Lipschitz
                    self.L[n] = None
                    self.unknown[n] = f"{_target_name(n, self.gm)} (discrete output)"
                else:  # sizes/shapes: fixed at this input shape
                    self.L[n] = 0.0
                continue
            op = _target_name(n, self.gm)
            try:
                lv, method = self.rule(n)
            except _Unsupported as e:
                lv, method = None, f"unsupported: {e}"
                self.unknown[n] = op
            factor_info = self._factor(n, lv)
            self.L[n] = lv
            if _inplace(n, self.gm) and isinstance(n.args[0], torch.fx.Node):
                self.L[n.args[0]] = lv  # later users of the mutated tensor see the new value
            if n.op in ("call_module",) or _is_layer(op):
                self.record(n, op, factor_info, lv, method)
        if out_node is None:
            raise RlipError("the traced graph has no output")
        outs = out_node.args[0]
        flat = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        flat = [o for o in flat if isinstance(o, torch.fx.Node)]
        if not flat:
            raise RlipError("the model's output does not depend on its input")
        o = flat[0]
        if len(flat) > 1:
            log.warning("model returns %d outputs; bounding the first", len(flat))
        lo = self.L.get(o)
        if isinstance(lo, tuple):
            lo = lo[0]
        ov = self.values.get(o)
        oshape = tuple(ov.shape) if isinstance(ov, torch.Tensor) else None
        # unknown ops that the output depends on
        anc: set[torch.fx.Node] = set()
        stack = [o]
        while stack:
            m = stack.pop()
            if m in anc:
                continue
            anc.add(m)
            stack.extend(m.all_input_nodes)
        unsupported = sorted({name for node, name in self.unknown.items() if node in anc})
        if unsupported:
            lo = None
        return lo, oshape, unsupported


def _has_float_tensor(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return v.is_floating_point() or v.is_complex()
    if isinstance(v, (list, tuple)):
        return any(_has_float_tensor(x) for x in v)
    return False


def _inplace(n: torch.fx.Node, gm: torch.fx.GraphModule) -> bool:
    if n.op == "call_module":
        return bool(getattr(gm.get_submodule(n.target), "inplace", False))
    if n.op == "call_method":
        return n.target.endswith("_") and not n.target.endswith("__")
    if n.op == "call_function":
        if isinstance(n.target, torch._ops.OpOverload):
            name = n.target._schema.name.split("::")[-1]
            return name.endswith("_") and not name.startswith("_")
        if n.target in (operator.iadd, operator.isub, operator.imul, operator.itruediv):
            return True
        if n.kwargs.get("inplace", False):
            return True
    return False


_LAYER_WORDS = ("conv", "linear", "batch_norm", "pool", "upsample", "addmm", "mm", "interpolate", "pad")


def _is_layer(op: str) -> bool:
    low = op.lower()
    return any(w in low for w in _LAYER_WORDS)


def upper_bound(
    model: nn.Module | torch.export.ExportedProgram,
    input_shape: Sequence[int],
    mode: Mode = "fast",
    device: str | torch.device | None = None,
) -> UpperBound:
    """Certified ℓ2 Lipschitz upper bound of model (x ↦ first output) at inputs of shape (C, H, W)
    (or any per-sample shape). Eval-mode semantics; the model's modes are restored.

    Returns UpperBound(upper=None, unsupported_ops=[...]) when the graph contains operators without
    a known bound on the way to the output.
    """
    if mode not in ("fast", "tight"):
        raise RlipError(f"unknown bound mode {mode!r}; expected 'fast' or 'tight'")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise RlipError(f"bad input shape {shape}")
    t0 = time.perf_counter()
    dev = torch.device(device) if device is not None else _model_device(model)
    dtype = _model_dtype(model)
    example = torch.rand((1, *shape), generator=torch.Generator().manual_seed(0), dtype=dtype).to(dev)
    modes = []
    if isinstance(model, nn.Module):
        modes = [(m, m.training) for m in model.modules()]
        _eval(model)
    try:
        gm, kind = to_graph_module(model, example)
        if kind == "fx" and gm is not model:
            _eval(gm)
        rec = _Recorder(gm)
        with torch.no_grad():
            try:
                rec.run(example)
            except Exception as e:
                raise RlipError(f"the model fails on inputs of shape {shape}: {e}") from None
        b = _Bounder(gm, rec.values, mode)
        upper, oshape, unsupported = b.run()
    finally:
        for m, flag in modes:
            m.training = flag
    if upper is not None:
        upper = float(upper)
    return UpperBound(
        upper=upper,
        input_shape=shape,
        output_shape=None if oshape is None else tuple(oshape[1:]),
        unsupported_ops=unsupported,
        layers=b.layers,
        mode=mode,
        seconds=time.perf_counter() - t0,
        graph=kind,
    )


def _eval(model: nn.Module) -> None:
    """model.eval(), also for modules of exported programs (whose eval() raises): set the flags."""
    try:
        model.eval()
    except NotImplementedError:
        for m in model.modules():
            m.training = False


def _model_dtype(model: Any) -> torch.dtype:
    params = (
        model.state_dict.values() if isinstance(model, torch.export.ExportedProgram) else model.parameters()
    )
    for p in params:
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _model_device(model: Any) -> torch.device:
    if isinstance(model, torch.export.ExportedProgram):
        for v in model.state_dict.values():
            return v.device
        return torch.device("cpu")
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


__all__ = [
    "GELU_LIP",
    "SAFETY",
    "SILU_LIP",
    "LayerBound",
    "UpperBound",
    "bn_scale",
    "conv2d_bound",
    "linear_bound",
    "spatial_linear_bound",
    "to_graph_module",
    "upper_bound",
]
