"""Certified numerics shared by the rules: dense spectral norms, Linear and BatchNorm factors, and the
exact norm of separable spatial operators (pooling, interpolation, padding) at any size.

All norms are computed in float64 and multiplied by SAFETY = 1 + 1e-6, which exceeds the rounding
error of the SVDs and products at these sizes by orders of magnitude.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from robustbench_lip.lipschitz.bounds.gram import sigma_max

log = logging.getLogger(__name__)

SAFETY = 1.0 + 1e-6
SVD_MAX = 64  # matrices whose smaller side exceeds this get the certified Gram/Cholesky bound, not an SVD
DENSE_SPATIAL_MAX = 4096  # single-channel H·W up to which a non-separable spatial op gets a dense SVD
_PROBE_ELEMENTS = 1 << 24  # float64 elements per batch of separable probes (128 MiB)


def spectral_norm_dense(m: torch.Tensor) -> float:
    """σ_max of a matrix or a batch of matrices (max over the batch), in float64 / complex128: an SVD
    for small matrices, else `gram.sigma_max` (a certified upper bound within ≈ 1e-5, in a fraction
    of an SVD's time and in bounded memory)."""
    if m.numel() == 0:
        return 0.0
    m = m.to(torch.complex128 if m.is_complex() else torch.float64)
    if min(m.shape[-2:]) > SVD_MAX:
        return sigma_max(m.reshape(-1, *m.shape[-2:]))
    return float(torch.linalg.matrix_norm(m, 2).max())


def linear_bound(weight: torch.Tensor) -> float:
    """Certified ‖W‖₂ of a Linear weight (out, in) (1-d: a row): exact σ_max times SAFETY."""
    w = weight.detach()
    if w.dim() == 1:
        w = w.view(1, -1)
    return SAFETY * spectral_norm_dense(w)


def bn_scale(running_var: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Per-channel multiplier γ/√(var+eps) of an eval BatchNorm (float64)."""
    s = 1.0 / torch.sqrt(running_var.detach().to(torch.float64) + eps)
    if weight is not None:
        s = s * weight.detach().to(torch.float64)
    return s


def _onehots(idx: torch.Tensor, fixed: int, axis: int, hw: tuple[int, int]) -> torch.Tensor:
    """(len(idx), 1, H, W) float64 images e_i e_fixedᵀ (axis 0) or e_fixed e_iᵀ (axis 1)."""
    h, w = hw
    out = torch.zeros(len(idx), 1, h, w, dtype=torch.float64)
    ar = torch.arange(len(idx))
    if axis == 0:
        out[ar, 0, idx, fixed] = 1.0
    else:
        out[ar, 0, fixed, idx] = 1.0
    return out


AxisFn = Callable[[torch.Tensor], torch.Tensor]


def _axis_matrices(fn: AxisFn, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """(M̃_h, M̃_w, s) with M = M̃_h ⊗ M̃_w / s, from single-pixel probes of the full 2-D map."""
    h, w = hw
    i0, j0 = h // 2, w // 2
    centre = fn(_onehots(torch.tensor([i0]), j0, 0, hw))[0, 0]
    if centre.dim() != 2 or not bool(centre.abs().max() > 0):
        return None
    r0, k0 = divmod(int(centre.abs().argmax()), centre.shape[1])
    per = max(1, _PROBE_ELEMENTS // max(1, centre.numel()))
    cols, rows = [], []
    for a in range(0, h, per):
        cols.append(fn(_onehots(torch.arange(a, min(h, a + per)), j0, 0, hw))[:, 0, :, k0])
    for a in range(0, w, per):
        rows.append(fn(_onehots(torch.arange(a, min(w, a + per)), i0, 1, hw))[:, 0, r0, :])
    return torch.cat(cols).T, torch.cat(rows).T, float(centre[r0, k0])


def separable_norm(
    fn: AxisFn,
    hw: tuple[int, int],
    axis_fns: tuple[AxisFn, AxisFn] | None = None,
) -> tuple[float, str] | None:
    """Exact ‖M‖ (times SAFETY) of a linear per-channel map M = M_h ⊗ M_w on (N, 1, H, W) float64.

    axis_fns: the same operator restricted to one axis, (N, 1, H, 1) → (N, 1, H_out, 1) and
    (N, 1, 1, W) → (N, 1, 1, W_out), whose basis responses are M_h and M_w themselves. Without them,
    the factors are read off single-pixel probes of fn: for a probe pixel (i0, j0) and an output
    entry (r0, k0) it reaches, M̃_h[:, i] = fn(e_i e_j0ᵀ)[:, k0], M̃_w[:, j] = fn(e_i0 e_jᵀ)[r0, :],
    and M = M̃_h ⊗ M̃_w / s with s = fn(e_i0 e_j0ᵀ)[r0, k0]. Either way ‖M‖ = ‖M_h‖·‖M_w‖.
    Separability is a property of the operators this is used for (pooling, interpolation,
    padding); it is re-checked against fn on two random images, and None is returned when the
    check fails, so that the caller falls back to another bound.
    """
    h, w = hw
    if axis_fns is not None:
        fh, fw = axis_fns
        mh = fh(torch.eye(h, dtype=torch.float64).view(h, 1, h, 1))[:, 0, :, 0].T
        mw = fw(torch.eye(w, dtype=torch.float64).view(w, 1, 1, w))[:, 0, 0, :].T
        s = 1.0
    else:
        r = _axis_matrices(fn, hw)
        if r is None:
            return None
        mh, mw, s = r
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, h, w, dtype=torch.float64, generator=gen)
    y = fn(x)[:, 0]
    pred = torch.einsum("ri,nij,kj->nrk", mh, x[:, 0], mw) / s
    if pred.shape != y.shape or not bool((pred - y).abs().max() <= 1e-9 * (1.0 + float(y.abs().max()))):
        log.debug("separability check failed for a %s operator", hw)
        return None
    return SAFETY * spectral_norm_dense(mh) * spectral_norm_dense(mw) / abs(s), "separable-exact"


def spatial_linear_bound(
    fn: AxisFn,
    hw: tuple[int, int],
    nonnegative: bool,
    axis_fns: tuple[AxisFn, AxisFn] | None = None,
) -> tuple[float, str] | None:
    """Certified norm of a parameter-free, per-channel linear map on (N, 1, H, W) float64 images.

    Separable operators: the exact product of their 1-D norms (`separable_norm`). Otherwise a dense
    SVD of the single-channel matrix when H·W ≤ DENSE_SPATIAL_MAX; else, for a matrix known to be
    non-negative, the Schur test √(‖M‖₁‖M‖∞); else None.
    """
    r = separable_norm(fn, hw, axis_fns)
    if r is not None:
        return r
    h, w = hw
    n = h * w
    if n <= DENSE_SPATIAL_MAX:
        basis = torch.eye(n, dtype=torch.float64).view(n, 1, h, w)
        out = fn(basis).reshape(n, -1)
        return SAFETY * spectral_norm_dense(out), "dense-svd"
    if not nonnegative:
        return None
    ones = torch.ones(1, 1, h, w, dtype=torch.float64, requires_grad=True)
    y = fn(ones)
    (col,) = torch.autograd.grad(y.sum(), ones)
    return SAFETY * math.sqrt(float(col.max()) * float(y.max())), "schur-test"


def windows_per_pixel(k: int, s: int, d: int = 1) -> int:
    """Largest number of (kernel k, stride s, dilation d) pooling windows covering one input pixel."""
    return max(1, min(k, -(-(d * (k - 1) + 1) // s)))


def adaptive_windows_per_pixel(n_in: int, n_out: int) -> int:
    """Largest number of adaptive-pooling windows (n_in → n_out) covering one input pixel."""
    cnt = [0] * n_in
    for o in range(n_out):
        a = (o * n_in) // n_out
        b = -(-((o + 1) * n_in) // n_out)
        for i in range(a, b):
            cnt[i] += 1
    return max(cnt) if cnt else 1
