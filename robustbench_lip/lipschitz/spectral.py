"""Largest singular value of the input Jacobian of A, or of its reflection 2J − I, per sample.

Power iteration on MᵀM (M = J or 2J − I) with the products of `lipschitz.jvp` (by default double
backward on one graph built per batch and reused across iterations): no full Jacobian is formed.
Samples must be processed independently by `f` (BatchNorm in eval mode), so that the batch
Jacobian is block-diagonal and each block's norm is estimated separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robustbench_lip.lipschitz.jvp import JacobianProducts, Map, Target, sample_norms, unit_samples


@dataclass
class SpectralNormResult:
    """sigma: (N,) ‖M u‖ for the final unit vector u — a measured lower estimate of σ_max(M(x_i)).

    vector: (N, *x.shape[1:]) the unit right singular vector estimates (detached);
    converged: (N,) bool, relative change of sigma ≤ tol at the last iteration; iters: iterations run.
    """

    sigma: torch.Tensor
    vector: torch.Tensor
    converged: torch.Tensor
    iters: int


def power_iterate(
    products: JacobianProducts, u: torch.Tensor, iters: int, tol: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`iters` steps u ← MᵀM u / ‖MᵀM u‖ per sample from u (N, ...), already of unit norm per sample.

    With tol, stops once every sample's ‖M u‖ changed by at most tol relatively. Returns (u, converged
    (N,) bool — all False without tol —, iterations run). No graph is kept.
    """
    n = u.shape[0]
    sigma_prev = torch.full((n,), float("nan"), device=u.device, dtype=u.dtype)
    converged = torch.zeros(n, dtype=torch.bool, device=u.device)
    done = 0
    for done in range(1, iters + 1):  # noqa: B007 - `done` is reported
        v = products.jvp(u)
        u = unit_samples(products.vjp(v))
        if tol is not None:
            sigma = sample_norms(v)
            converged = (sigma - sigma_prev).abs() <= tol * sigma.clamp_min(1e-12)
            sigma_prev = sigma
            if bool(converged.all()):
                break
    return u, converged, done


def spectral_norm(
    f: Map,
    x: torch.Tensor,
    target: Target = "A",
    iters: int = 20,
    tol: float = 1e-4,
    u0: torch.Tensor | None = None,
    create_graph: bool = False,
    generator: torch.Generator | None = None,
    method: str = "double_backward",
    fd_step: torch.Tensor | float | None = None,
) -> SpectralNormResult:
    """σ_max of J_f(x_i) (target "A") or of 2J_f(x_i) − I ("reflection") for each sample of x.

    x: (N, ...) inputs; u0: optional warm start of the same shape; iters ≥ 0 power steps (stops
    early once every sample's relative change ≤ tol). With create_graph=True the returned sigma is
    differentiable with respect to f's parameters (for penalties). method / fd_step: how the JVPs
    are taken (lipschitz.jvp.JacobianProducts). Does not change f's modes.
    """
    if iters < 0:
        raise ValueError("iters must be ≥ 0")
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        products = JacobianProducts(f, x, target, method=method, fd_step=fd_step)
        if u0 is None:
            gen_device = generator.device if generator is not None else x.device
            u = torch.randn(x.shape, dtype=x.dtype, device=gen_device, generator=generator).to(x.device)
        else:
            if u0.shape != x.shape:
                raise ValueError(f"u0 shape {tuple(u0.shape)} != x shape {tuple(x.shape)}")
            u = u0.detach().to(x)
        u, converged, done = power_iterate(products, unit_samples(u), iters, tol)
        u = u.detach()
        sigma = sample_norms(products.jvp(u, create_graph=create_graph))
    if not create_graph:
        sigma = sigma.detach()
    return SpectralNormResult(sigma=sigma, vector=u, converged=converged.detach(), iters=done)
