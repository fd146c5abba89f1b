"""Operator norms of 2-D convolutions (ℓ2 → ℓ2), certified: `conv2d_bound`.

The operator is x ↦ conv2d(pad(x), w, stride, dilation) on inputs of a given size, pad being zero,
circular, reflect or replicate padding. In order of preference:
- a kernel that is 1×1 (after dropping the taps that only see zero padding): each output reads one
  input position, so the norm is exactly σ_max(W)·√(largest number of outputs reading one pixel);
- a small operator (`dense_cost_ok`): the exact norm of its explicit matrix;
- zero padding: a polyphase circular embedding (`embedding.py`): the conv is a compression of a
  circular conv on a grid just large enough that no read wraps onto data, whose norm is the max over
  frequencies of σ_max of the kernel transform;
- circular padding: exact polyphase circular conv when the stride divides the size (times the
  square root of the output multiplicity), else the stride-1 circular conv's norm times it;
- reflect / replicate padding: √(largest number of read copies of one pixel) times the bound of
  the valid conv on the padded grid.
Every σ_max is certified by `gram.sigma_max` (Cholesky certificate) and multiplied by SAFETY.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds.embedding import (
    Axis,
    circular_axis,
    circular_norm,
    source_map,
    zeros_axis,
)
from robustbench_lip.lipschitz.bounds.gram import sigma_max
from robustbench_lip.lipschitz.bounds.numerics import SAFETY

Mode = Literal["fast", "tight"]
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
# explicit-matrix path: (max entries of the per-group matrix, max min(n_in, n_out)²·max(n_in, n_out))
DENSE_LIMITS = {"fast": (1 << 23, 1 << 33), "tight": (1 << 25, 1 << 36)}
_BASIS_CHUNK = 1 << 21  # float64 entries of one chunk of basis images in the explicit-matrix path


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
    if isinstance(padding, (list, tuple)) and len(padding) not in (1, 2):
        raise RlipError("conv2d padding: an int or a pair; pass asymmetric padding as padding4=(top, bottom, "
                        "left, right)")
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def _n_out(n: int, p0: int, p1: int, k: int, s: int, d: int) -> int:
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def _pad(x: torch.Tensor, pad4: tuple[int, int, int, int], pmode: str) -> torch.Tensor:
    if not any(pad4):
        return x
    order = (pad4[2], pad4[3], pad4[0], pad4[1])
    return F.pad(x, order) if pmode == "zeros" else F.pad(x, order, mode=pmode)


def dense_cost_ok(n_in: int, n_out: int, mode: Mode) -> bool:
    """Whether the explicit per-group matrix (n_in × n_out) is cheap enough for an exact norm."""
    elems, flops = DENSE_LIMITS[mode]
    lo, hi = min(n_in, n_out), max(n_in, n_out)
    return n_in * n_out <= elems and lo * lo * hi <= flops


def _dense_norm(wg: torch.Tensor, hw: tuple[int, int], stride, pad4, dilation, pmode: str) -> float:
    """Certified norm of x ↦ conv2d(pad(x), w_g), max over groups, from the explicit matrix;
    wg: (G, co, ci, kh, kw)."""
    g, _co, ci = wg.shape[:3]
    h, w = hw
    n = ci * h * w
    best = 0.0
    for gi in range(g):
        rows = []
        step = max(1, _BASIS_CHUNK // n)
        for a in range(0, n, step):
            idx = torch.arange(a, min(n, a + step))
            basis = torch.zeros(len(idx), n, dtype=torch.float64, device=wg.device)
            basis[torch.arange(len(idx)), idx] = 1.0
            x = _pad(basis.view(-1, ci, h, w), pad4, pmode)
            out = F.conv2d(x, wg[gi], stride=stride, dilation=dilation)
            rows.append(out.reshape(len(idx), -1))
        best = max(best, sigma_max(torch.cat(rows)))
    return best


def _read_counts(ax: Axis) -> torch.Tensor:
    """Per input pixel of one axis: how many read positions (padded-grid positions some output reads)
    are copies of it."""
    src = ax.src[ax.read]
    return torch.bincount(src[src >= 0], minlength=ax.n)


def conv2d_bound(
    weight: torch.Tensor,
    input_hw: tuple[int, int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    mode: Mode = "fast",
    padding4: tuple[int, int, int, int] | None = None,
) -> tuple[float, str]:
    """Certified bound on ‖x ↦ conv2d(pad(x), weight, stride, dilation, groups)‖ (ℓ2 → ℓ2) for inputs
    of spatial size input_hw (padding applied with padding_mode: zeros, circular, reflect, replicate);
    returns (bound, method). weight: (c_out, c_in/groups, kh, kw). A transposed convolution has the
    norm of the conv it is the adjoint of, on the transposed conv's OUTPUT grid. mode "tight" allows
    larger explicit matrices. padding4 = (top, bottom, left, right), if given, replaces padding (an
    asymmetric pad, e.g. F.pad(x, (left, right, top, bottom), mode) before a padding-free conv). See
    the module docstring for the methods.
    """
    if weight.dim() != 4:
        raise RlipError(f"conv2d weight must be 4-d, got shape {tuple(weight.shape)}")
    if padding_mode not in PADDING_MODES:
        raise RlipError(f"conv2d: unsupported padding_mode {padding_mode!r}")
    co, ci_g, kh, kw = weight.shape
    if not bool(torch.isfinite(weight.detach()).all()):
        raise RlipError("conv2d weight has non-finite values (NaN or inf)")
    if groups < 1 or co % groups:
        raise RlipError(f"conv2d: {co} output channels not divisible by groups={groups}")
    s2, d2 = _pair(stride), _pair(dilation)
    pad4 = _padding4(padding, (kh, kw), d2) if padding4 is None else tuple(int(p) for p in padding4)
    if len(pad4) != 4 or min(pad4) < 0:
        raise RlipError(f"conv2d: padding4 must be four non-negative ints, got {padding4!r}")
    wg = weight.detach().to(torch.float64).reshape(groups, co // groups, ci_g, kh, kw)
    h, w = (int(input_hw[0]), int(input_hw[1]))
    if not _pad_ok(pad4, (h, w), padding_mode):
        raise RlipError(f"conv2d: {padding_mode} padding {pad4} is wider than torch allows on {h}×{w}")
    ho = _n_out(h, pad4[0], pad4[1], kh, s2[0], d2[0])
    wo = _n_out(w, pad4[2], pad4[3], kw, s2[1], d2[1])
    if ho <= 0 or wo <= 0:
        return 0.0, "empty output"
    axh = source_map(h, pad4[0], pad4[1], kh, s2[0], d2[0], padding_mode)
    axw = source_map(w, pad4[2], pad4[3], kw, s2[1], d2[1], padding_mode)
    ch, cw = _read_counts(axh), _read_counts(axw)
    if int(ch.max()) == 0 or int(cw.max()) == 0:
        return 0.0, "reads padding only"
    jh, jw = axh.active_taps(), axw.active_taps()
    if len(jh) == 1 and len(jw) == 1:  # one tap: W ⊗ (0/1 selection with column counts c)
        mult = (float(ch.max()) * float(cw.max())) ** 0.5
        return SAFETY * mult * sigma_max(wg[..., jh[0], jw[0]]), "1x1-exact"
    if dense_cost_ok(ci_g * h * w, (co // groups) * ho * wo, mode):
        return SAFETY * _dense_norm(wg, (h, w), s2, pad4, d2, padding_mode), "dense-svd"
    if padding_mode == "zeros":
        eh, ew = zeros_axis(axh), zeros_axis(axw)
        return SAFETY * circular_norm(wg, eh, ew), "circular-embedding"
    if padding_mode == "circular":
        eh, ew = circular_axis(axh), circular_axis(axw)
        return SAFETY * circular_norm(wg, eh, ew), "circular-exact" if eh.exact and ew.exact else "circular"
    # reflect / replicate: √(max read copies) × the valid conv on the padded grid
    mult = (float(ch.max()) * float(cw.max())) ** 0.5
    hp, wp = h + pad4[0] + pad4[1], w + pad4[2] + pad4[3]
    b, method = conv2d_bound(weight, (hp, wp), s2, 0, d2, groups, "zeros", mode)
    return mult * b, f"{padding_mode}-copies×{method}"


def _pad_ok(pad4: tuple[int, int, int, int], hw: tuple[int, int], pmode: str) -> bool:
    """Whether torch can apply this padding (circular: pad ≤ size; reflect: pad < size)."""
    if pmode == "circular":
        return max(pad4[:2]) <= hw[0] and max(pad4[2:]) <= hw[1]
    if pmode == "reflect":
        return max(pad4[:2]) < hw[0] and max(pad4[2:]) < hw[1]
    return True
