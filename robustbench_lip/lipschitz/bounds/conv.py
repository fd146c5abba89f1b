"""Operator norms of 2-D convolutions (ℓ2 → ℓ2), certified: `conv2d_bound`.

Zero padding: the padded input embeds isometrically into a circular grid large enough that no
valid output wraps; a stride-s conv equals a stride-1 conv on the s_h·s_w polyphase components,
so the bound is the exact norm of that circular conv (max over frequencies of σ_max of the kernel
transform). Small per-group matrices get an exact dense SVD instead.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds.numerics import SAFETY, spectral_norm_dense

Mode = Literal["fast", "tight"]
DENSE_CONV_MAX = {"fast": 0, "tight": 2304}  # per-group c_in·H·W up to which a conv gets a dense SVD


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
        best = max(best, spectral_norm_dense(out.reshape(n, -1)))
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
