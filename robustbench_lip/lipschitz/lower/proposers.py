"""Autograd proposers of candidate pairs (never bounds themselves): power iteration on J(x)ᵀJ(x)
(double backward, else finite-difference JVPs), hill climbing on σ_max(J(x)), Adam on the quotient."""

from __future__ import annotations

import math
import time

import torch

from robustbench_lip.lipschitz.jvp import JacobianProducts, sample_norms, unit_samples
from robustbench_lip.lipschitz.lower.maps import _BATCH, Map, _bshape, _g, _line
from robustbench_lip.lipschitz.lower.witness import _scale
from robustbench_lip.lipschitz.spectral import spectral_norm


class _Sigma:
    """σ_max(J(x)) per sample with a warm start (power iteration of `lipschitz.spectral`): JVPs by
    double backward, else (maps without double backward) by finite differences with the per-sample
    step 1e-3·s_i, VJPs by autograd."""

    def __init__(self, search: Map, target: str, notes: list[str]) -> None:
        self.search, self.target, self.notes, self.fd = search, target, notes, False

    def __call__(self, x: torch.Tensor, iters: int, u0: torch.Tensor):
        if not self.fd:
            try:
                r = spectral_norm(self.search, x, target=self.target, iters=iters, u0=u0)  # type: ignore[arg-type]
                return r.sigma, r.vector, r.converged
            except Exception as e:
                self.fd = True
                self.notes.append(
                    f"power_iteration: double backward failed ({_line(e)}); finite-difference JVPs"
                )
        step = _bshape(1e-3 * _scale(x), x)
        r = spectral_norm(
            self.search, x, self.target, iters, tol=1e-4, u0=u0, method="finite_difference", fd_step=step
        )
        return r.sigma, r.vector, r.converged


_POWER_CHUNK = 10
"""Power iterations between two looks at the time budget (warm-started from the last vector)."""


def _power(sigma: _Sigma, x: torch.Tensor, iters: int, gen: torch.Generator, deadline=None):
    """σ_max, right singular vector and convergence flag per point (`iters` power iterations, in
    chunks of _POWER_CHUNK; fewer once every point converged or the deadline passed)."""
    sig, vec, conv = [], [], []
    for i in range(0, x.shape[0], _BATCH):
        xb = x[i : i + _BATCH]
        u = torch.randn(xb.shape, generator=gen, dtype=xb.dtype).to(xb.device)
        done = 0
        while True:
            k = min(_POWER_CHUNK, iters - done) if iters > done else iters
            s, u, c = sigma(xb, k, u)
            done += k
            if done >= iters or bool(c.all()) or over_deadline(deadline):
                break
        sig.append(s)
        vec.append(u)
        conv.append(c)
    return torch.cat(sig), torch.cat(vec), torch.cat(conv)


def _jac_norm_along(f: Map, x: torch.Tensor, u: torch.Tensor, target: str) -> torch.Tensor:
    """‖J(x) u‖ per sample (or ‖(2J − I) u‖), differentiable with respect to x (x requires grad)."""
    return sample_norms(JacobianProducts(f, x, target).jvp(u, create_graph=True))


def over_deadline(deadline: float | None) -> bool:
    """Whether the time budget (a time.perf_counter() deadline, None: none) is spent."""
    return deadline is not None and time.perf_counter() >= deadline


def _ascent(
    sigma: _Sigma, x0, u0, steps: int, iters: int, gen: torch.Generator, notes: list[str], deadline=None
):
    """Hill climbing on σ_max(J(x)) from x0 in [0, 1]: steps along ∇‖J(x)u‖ (a random direction where
    it vanishes or is unavailable), improvements kept, until `steps` or the deadline. Returns the
    final points and vectors."""
    x, u = x0.clone(), u0.clone()
    sig, u, _ = sigma(x, iters, u)
    step = 0.25 * math.sqrt(x[0].numel()) / 16
    use_grad = not sigma.fd
    for _ in range(steps):
        if over_deadline(deadline):
            notes.append("jacobian_ascent stopped early: lower-bound time budget spent")
            break
        grad = None
        if use_grad:
            try:
                xr = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    s = _jac_norm_along(sigma.search, xr, u, sigma.target)
                    if s.requires_grad:
                        grad = torch.autograd.grad(s.sum(), xr, allow_unused=True)[0]
            except Exception as e:
                use_grad = False
                notes.append(f"jacobian_ascent: no gradient of ‖J u‖ ({_line(e)}); random-direction steps")
        if grad is None:
            grad = torch.zeros_like(x)
        gn = _bshape(sample_norms(grad), x)
        rnd = unit_samples(torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device))
        direction = torch.where(gn > 1e-12, grad / gn.clamp_min(1e-12), rnd)
        cand = (x + step * direction).clamp(0, 1)
        s2, v2, _ = sigma(cand, iters, u)
        better = s2 > sig
        m = _bshape(better, x)
        x, u, sig = torch.where(m, cand, x), torch.where(m, v2, u), torch.where(better, s2, sig)
        if not bool(better.any()):
            step *= 0.5
    return x, u


def _pairwise(search: Map, x0, u0, target: str, steps: int, lr: float = 0.01, deadline=None):
    """Adam on ‖g(x) − g(y)‖ / ‖x − y‖ over pairs in [0, 1] from y = x + 1e-2·u; best pair per start
    (at most `steps` steps, fewer when the deadline passes)."""
    g = _g(search, target)
    x = x0.clone()
    y = (x0 + 1e-2 * u0).clamp(0, 1)
    same = sample_norms(x - y) < 1e-6
    if bool(same.any()):
        y[same] = (x0[same] - 1e-2 * u0[same]).clamp(0, 1)
    x, y = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=lr)
    best = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
    bx, by = x.detach().clone(), y.detach().clone()
    for it in range(steps + 1):
        with torch.enable_grad():
            d = sample_norms(x - y)
            q = sample_norms(g(x) - g(y)) / d.clamp_min(1e-12)
            q = torch.where(d > 1e-9, q, torch.zeros_like(q))
        qd = q.detach().double().cpu()
        imp = qd > best
        if bool(imp.any()):
            m = _bshape(imp.to(x.device), x)
            bx, by = torch.where(m, x.detach(), bx), torch.where(m, y.detach(), by)
            best = torch.where(imp, qd, best)
        if it == steps or over_deadline(deadline):
            break
        gx, gy = torch.autograd.grad(-q.sum(), [x, y])
        x.grad, y.grad = gx, gy
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
            y.clamp_(0, 1)
    return bx, by
