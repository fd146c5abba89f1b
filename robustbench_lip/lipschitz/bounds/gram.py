"""Certified largest singular value of batches of matrices (float64 / complex128), in bounded memory.

`sigma_max_blocks(blocks)` returns an upper bound on max σ_max over every matrix of an iterable of
(B, m, n) blocks (generated lazily, so the caller bounds the memory by the block size). Per block:
each matrix is scaled by a power of two (exact), G = AᴴA is formed on its smaller side, a batched
Lanczos run gives Ritz values μ ≤ λ_max(G), and τ² = (1 + REL_SLACK)·max μ (never below
the running bound of earlier blocks). A successful Cholesky factorisation of (τ² − η)I − G then
certifies λ_max(AᴴA) ≤ τ²: η covers the backward error of Cholesky (|ΔM| ≤ γ_{n+1}|Rᴴ||R|, so
‖ΔM‖ ≤ γ_{n+1}·tr M) and the rounding of G itself (‖Ĝ − G‖ ≤ γ_m·tr G), with a factor 8 for complex
arithmetic. Matrices whose factorisation fails get a backward-stable eigvalsh plus its error bound.
This costs one Gram and one Cholesky per matrix: the certified equivalent of a Gram iteration
(Delattre et al. 2023), which needs one Gram per step and ≥ 10 steps on flat spectra.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

U = torch.finfo(torch.float64).eps / 2
REL_SLACK = 1e-5  # τ² = (1 + REL_SLACK)·(largest Rayleigh quotient): σ is certified to ≈ 5e-6
BLOCK_STEPS = 3  # block power steps on every matrix (estimates that pick the candidates)
LANCZOS_STEPS = (12, 48)  # Lanczos steps: the candidates, then the matrices not yet certified
CANDIDATE = 0.95  # matrices whose estimate is ≥ this × the largest are candidates
BLOCK_BYTES = 128 << 20  # memory budget of one block of frequency matrices (bytes)


def _eta(g: torch.Tensor, tau2: float, g_err: torch.Tensor) -> torch.Tensor:
    """Per-matrix margin covering Cholesky's backward error on g (B, n, n) and g_err (B,), a bound on
    ‖ĝ − g‖₂ (the rounding of the Gram itself)."""
    n = g.shape[-1]
    tr = g.diagonal(dim1=-2, dim2=-1).real.sum(-1).clamp_min(0)
    return 8 * U * (n + 2) * (n * tau2 + tr) + g_err


def _lanczos(g: torch.Tensor, v: torch.Tensor, steps: int) -> torch.Tensor:
    """Largest Ritz values (B,) of `steps` Lanczos steps (full re-orthogonalisation) on Hermitian PSD
    g (B, n, n) from v (B, n, 1): Rayleigh quotients of Krylov vectors, so ≤ λ_max (an estimate only:
    the certificate is `_certify`)."""
    k = min(steps, g.shape[-1])
    qs = torch.zeros(*g.shape[:-1], k, dtype=g.dtype, device=g.device)
    q = v / v.norm(dim=-2, keepdim=True).clamp_min(1e-300)
    for j in range(k):
        qs[..., j : j + 1] = q
        w = g @ q
        for _ in range(2):
            w = w - qs[..., : j + 1] @ (qs[..., : j + 1].mH @ w)
        q = w / w.norm(dim=-2, keepdim=True).clamp_min(1e-300)
    # after a breakdown (a g with few distinct eigenvalues, e.g. an orthogonal or AOL layer) the
    # normalised remainders are rounding noise and not orthogonal: re-orthonormalise the basis, so
    # that the Ritz values are Rayleigh quotients of an orthonormal basis (≤ λ_max, not above it)
    qo = torch.linalg.qr(qs)[0]
    t = qo.mH @ (g @ qo)
    return torch.linalg.eigvalsh((t + t.mH) / 2)[..., -1].clamp_min(0)


def _block_power(g: torch.Tensor, steps: int, width: int = 4) -> torch.Tensor:
    """Largest Ritz values (B,) of a block power iteration (width vectors, `steps` steps) on
    Hermitian PSD g (B, n, n): cheap estimates ≤ λ_max, used to pick the candidates for the largest."""
    gen = torch.Generator(device=g.device).manual_seed(1)
    y = torch.randn(g.shape[0], g.shape[-1], min(width, g.shape[-1]), dtype=torch.float64, generator=gen)
    y = y.to(device=g.device, dtype=g.dtype)
    for _ in range(steps):
        y, _ = torch.linalg.qr(g @ y)
    t = y.mH @ g @ y
    return torch.linalg.eigvalsh((t + t.mH) / 2)[..., -1].clamp_min(0)


def _certify(g: torch.Tensor, tau2: float, g_err: torch.Tensor) -> torch.Tensor:
    """Mask of the matrices of g (B, n, n) NOT certified λ_max ≤ tau2 by a Cholesky of (tau2 − η)I − g."""
    eta = _eta(g, tau2, g_err)
    m = -g
    m.diagonal(dim1=-2, dim2=-1).add_((tau2 - eta).view(-1, 1).to(g.dtype))
    _, info = torch.linalg.cholesky_ex(m)
    return (info != 0) | (eta >= 0.5 * REL_SLACK * tau2)


def gram_lambda(g: torch.Tensor, g_err: torch.Tensor, tau2_floor: float = 0.0) -> float:
    """Certified upper bound on max λ_max over Hermitian PSD Grams g (B, n, n) known to ‖ĝ − g‖₂ ≤ g_err
    (B,). A block power step picks candidates whose Lanczos runs set τ² (never below tau2_floor);
    matrices not certified at τ² by Cholesky get a longer run (raising τ²), then an eigvalsh with its
    backward-error bound. The runs only choose τ²: the certificate is the factorisation."""
    n = g.shape[-1]
    gen = torch.Generator(device=g.device).manual_seed(0)
    v = torch.randn(g.shape[0], n, 1, dtype=torch.float64, generator=gen, device=g.device).to(g.dtype)
    mu = _block_power(g, BLOCK_STEPS)
    top = mu >= CANDIDATE * mu.max()  # the candidates for the largest λ_max get a Lanczos run
    mu = _lanczos(g[top], v[top], LANCZOS_STEPS[0])
    tau2 = max(tau2_floor, float(mu.max()) * (1 + REL_SLACK))
    if tau2 <= 0.0:
        if not bool((g != 0).any()) and not bool((g_err > 0).any()):
            return 0.0
        tau2 = float(g.diagonal(dim1=-2, dim2=-1).real.max() + g_err.max())
    bad = _certify(g, tau2, g_err)
    if bool(bad.any()):
        g, g_err = g[bad], g_err[bad]
        mu = _lanczos(g, v[bad], LANCZOS_STEPS[1])
        tau2 = max(tau2, float(mu.max()) * (1 + REL_SLACK))
        bad = _certify(g, tau2, g_err)
    if bool(bad.any()):
        gb = g[bad]
        lam = torch.linalg.eigvalsh(gb)[..., -1]
        err = 8 * U * (n + 2) * torch.linalg.matrix_norm(gb, "fro") + _eta(gb, 0.0, g_err[bad])
        tau2 = max(tau2, float((lam + err).max()))
    return tau2


def _block_lambda(a: torch.Tensor, tau2_floor: float) -> float:
    """Certified upper bound on max λ_max(AᴴA) over the block a (B, m, n) (already scaled to ≈ 1);
    the Gram is formed on the smaller side (rounding ‖ĝ − g‖ ≤ γ·tr g with γ = 8(m + 2)u)."""
    if a.shape[-2] < a.shape[-1]:
        a = a.mH
    m, n = a.shape[-2:]
    if n == 1:  # a column: its exact squared norm (relative rounding ≤ γ_m)
        return float(a.abs().pow(2).sum((-2, -1)).max()) * (1 + 2 * (m + 2) * U)
    g = a.mH @ a
    g_err = 8 * U * (m + 2) * g.diagonal(dim1=-2, dim2=-1).real.sum(-1).clamp_min(0)
    return gram_lambda(g, g_err, tau2_floor)


def sigma_max_blocks(blocks: Iterable[torch.Tensor]) -> float:
    """Certified upper bound on the largest σ_max over all matrices of the (B, m, n) blocks, real or
    complex (computed in float64 / complex128). Not multiplied by SAFETY: the caller does that."""
    best = 0.0
    for blk in blocks:
        if blk.numel() == 0:
            continue
        a = blk.to(torch.complex128 if blk.is_complex() else torch.float64)
        amax = float(torch.linalg.vector_norm(a))  # ≥ every entry: only sets the scale
        if amax == 0.0:
            continue
        if not math.isfinite(amax):
            return math.inf
        e = math.frexp(amax)[1]
        a = a * (2.0 ** (-e))  # exact power-of-two scaling
        floor = (best * 2.0 ** (-e)) ** 2
        lam = _block_lambda(a, floor)
        best = max(best, math.sqrt(lam) * 2.0**e)
    return best


def sigma_max_from_grams(blocks: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Certified upper bound on the largest σ_max of matrices given by their Grams: blocks of
    (g (B, n, n) Hermitian PSD, g_err (B,) bounds on ‖ĝ − g‖₂). Entries should be of order one."""
    best = 0.0
    for g, g_err in blocks:
        if g.numel():
            best = max(best, gram_lambda(g, g_err, best))
    return math.sqrt(best)


def sigma_max(a: torch.Tensor) -> float:
    """Certified upper bound on σ_max of a matrix (m, n), or the max over a batch (B, m, n), chunked
    so that a block stays within BLOCK_BYTES."""
    if a.dim() == 2:
        a = a.unsqueeze(0)
    m, n = a.shape[-2:]
    per = 16 * (m * n + 3 * min(m, n) ** 2)
    step = max(1, BLOCK_BYTES // max(per, 1))
    return sigma_max_blocks(a[i : i + step] for i in range(0, a.shape[0], step))
