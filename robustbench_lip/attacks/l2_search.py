"""ℓ2 PGD on any per-sample objective in all of ℝ^d (no clamping to [0, 1]): the search that tests a
certified radius (the certificates hold on all of ℝ^d), used by the soundness tests and
benchmarks/bench_certified_attack.py. Not an attack of the registry: it has no labels, masks or
budget in pixel units, only an objective to maximise inside a per-sample ball."""

from __future__ import annotations

from collections.abc import Callable

import torch


def pgd_l2(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    eps: torch.Tensor,
    steps: int = 40,
    restarts: int = 10,
    seed: int = 0,
) -> torch.Tensor:
    """The best objective(x + δ) (N,) found with ‖δ_i‖₂ ≤ eps_i, over `restarts` random starts of
    `steps` normalised-gradient steps of size 2.5·eps/steps, each projected onto the ball. x (N, ...),
    eps (N,); randomness from a generator seeded with `seed` (the global RNG is untouched)."""
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    shape = (n, *[1] * (x.dim() - 1))
    e = eps.to(x).view(shape)

    def norm(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)

    best = torch.full((n,), -float("inf"), dtype=x.dtype)
    for _ in range(restarts):
        d = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        d = d / norm(d) * e * torch.rand(n, generator=gen, dtype=x.dtype).view(shape)
        for _ in range(steps):
            d.requires_grad_(True)
            (g,) = torch.autograd.grad(objective(x + d).sum(), d)
            with torch.no_grad():
                d = d + 2.5 * e / steps * g / norm(g)
                d = d * torch.clamp(e / norm(d), max=1.0)
        with torch.no_grad():
            best = torch.maximum(best, objective(x + d))
    return best


__all__ = ["pgd_l2"]
