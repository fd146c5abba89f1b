"""Largest singular value of the input Jacobian of A, or of its reflection 2J − I, per sample.

Power iteration on JᵀJ (or (2J − I)ᵀ(2J − I)) with Jacobian-vector products taken by double
backward on one graph built per batch and reused across iterations: no full Jacobian is formed.
Samples must be processed independently by `f` (BatchNorm in eval mode), so that the batch
Jacobian is block-diagonal and each block's norm is estimated separately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from robustbench_lip.errors import RlipError

Target = Literal["A", "reflection"]


@dataclass
class SpectralNormResult:
    """sigma: (N,) ‖J u‖ for the final unit vector u — a measured lower estimate of σ_max(J(x_i)).

    vector: (N, *x.shape[1:]) the unit right singular vector estimates (detached);
    converged: (N,) bool, relative change of sigma ≤ tol at the last iteration; iters: iterations run.
    """

    sigma: torch.Tensor
    vector: torch.Tensor
    converged: torch.Tensor
    iters: int


def sample_norms(t: torch.Tensor) -> torch.Tensor:
    """(N,) Euclidean norm of each sample of t (N, ...)."""
    return t.flatten(1).norm(dim=1)


def unit_samples(t: torch.Tensor) -> torch.Tensor:
    """t (N, ...) with each sample scaled to unit Euclidean norm (zero samples stay ≈ 0)."""
    n = sample_norms(t).clamp_min(1e-30)
    return t / n.view(-1, *([1] * (t.dim() - 1)))


def check_target(target: str, in_shape: torch.Size, out_shape: torch.Size) -> None:
    """Raise RlipError for an unknown target or a reflection of a shape-changing map."""
    if target not in ("A", "reflection"):
        raise RlipError(f"unknown target {target!r}; expected 'A' or 'reflection'")
    if target == "reflection" and tuple(in_shape) != tuple(out_shape):
        raise RlipError(
            "the reflection R = 2A − I needs an output shape equal to the input shape; "
            f"this model maps {tuple(in_shape[1:])} → {tuple(out_shape[1:])}; use target 'A'"
        )


def spectral_norm(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: Target = "A",
    iters: int = 20,
    tol: float = 1e-4,
    u0: torch.Tensor | None = None,
    create_graph: bool = False,
    generator: torch.Generator | None = None,
) -> SpectralNormResult:
    """σ_max of J_f(x_i) (target "A") or of 2J_f(x_i) − I ("reflection") for each sample of x.

    x: (N, ...) inputs; u0: optional warm start of the same shape; iters ≥ 0 power steps (stops
    early once every sample's relative change ≤ tol). With create_graph=True the returned sigma is
    differentiable with respect to f's parameters (for penalties). Does not change f's modes.
    """
    if iters < 0:
        raise ValueError("iters must be ≥ 0")
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)
        check_target(target, x.shape, y.shape)
        refl = target == "reflection"
        w = torch.zeros_like(y, requires_grad=True)
        (g,) = torch.autograd.grad(y, x, w, create_graph=True)  # Jᵀw, linear in w

        def jvp(u: torch.Tensor, keep: bool = False) -> torch.Tensor:
            (ju,) = torch.autograd.grad(g, w, u, retain_graph=True, create_graph=keep)
            return 2 * ju - u if refl else ju

        def vjp(v: torch.Tensor) -> torch.Tensor:
            (jtv,) = torch.autograd.grad(y, x, v, retain_graph=True)
            return 2 * jtv - v if refl else jtv

        if u0 is None:
            gen_device = generator.device if generator is not None else x.device
            u = torch.randn(x.shape, dtype=x.dtype, device=gen_device, generator=generator).to(x.device)
        else:
            if u0.shape != x.shape:
                raise ValueError(f"u0 shape {tuple(u0.shape)} != x shape {tuple(x.shape)}")
            u = u0.detach().to(x)
        u = unit_samples(u)
        sigma_prev = torch.full((x.shape[0],), float("nan"), device=x.device, dtype=x.dtype)
        converged = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        done = 0
        for done in range(1, iters + 1):  # noqa: B007 - `done` is reported
            v = jvp(u)
            sigma = sample_norms(v)
            u = unit_samples(vjp(v))
            converged = (sigma - sigma_prev).abs() <= tol * sigma.clamp_min(1e-12)
            sigma_prev = sigma
            if bool(converged.all()):
                break
        u = u.detach()
        sigma = sample_norms(jvp(u, keep=create_graph))
    if not create_graph:
        sigma = sigma.detach()
    return SpectralNormResult(sigma=sigma, vector=u, converged=converged.detach(), iters=done)
