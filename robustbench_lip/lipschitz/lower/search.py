"""`lower_bounds`: run every proposer from the data points and keep the best witnessed quotient."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_lip.device import preserved_rng
from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.jvp import check_target, unit_samples
from robustbench_lip.lipschitz.lower.maps import (
    Map,
    Target,
    _check_x,
    _line,
    _Maps,
    _per_sample_problem,
    _prepare,
    _protected,
)
from robustbench_lip.lipschitz.lower.proposers import _ascent, _pairwise, _power, _Sigma, over_deadline
from robustbench_lip.lipschitz.lower.results import LowerBound
from robustbench_lip.lipschitz.lower.witness import _Best, _central_pairs, _consider, _data_pairs, _scale

STEP_SIZES: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
"""Pair distances relative to the input scale s_i: 1e-1 keeps rounding negligible (float32
fallback), 1e-3 stays in the local linear region of smooth maps; 1e-2 is used for every point."""
PROPOSERS: tuple[str, ...] = (
    "power_iteration",
    "jacobian_ascent",
    "pairwise",
    "random_directions",
    "data_pairs",
)


@dataclass
class _Run:
    """The state of one `lower_bounds` call, filled in by the proposers in order."""

    maps: _Maps
    xs: torch.Tensor
    fx: torch.Tensor
    target: str
    gen: torch.Generator
    notes: list[str]
    k: int
    order: torch.Tensor
    best: _Best = field(default_factory=_Best)
    sources: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(PROPOSERS))
    sig: torch.Tensor | None = None
    vec: torch.Tensor | None = None
    conv: torch.Tensor | None = None
    lower_mean: float | None = None
    deadline: float | None = None

    def spent(self, name: str) -> bool:
        """Whether the time budget is spent (then proposer `name` is skipped, with a note)."""
        if not over_deadline(self.deadline):
            return False
        self.notes.append(f"{name} not run: lower-bound time budget spent")
        return True

    def base(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "n_points": self.xs.shape[0],
            "eval_dtype": str(self.maps.eval_dtype)[6:],
            "notes": self.notes,
        }


def _larger(top: float | None, t2: float | None) -> float | None:
    return t2 if top is None else (top if t2 is None else max(top, t2))


def _propose_power(run: _Run, sigma: _Sigma, iters: int) -> None:
    """Power iteration at every point: its h = 1e-2 pairs at all points, every h at the top_k points."""
    xs, target = run.xs, run.target
    n = xs.shape[0]
    try:
        run.sig, run.vec, run.conv = _power(sigma, xs, iters, run.gen, run.deadline)
        order = run.order = torch.argsort(run.sig, descending=True)[: run.k].cpu()
        s = _scale(xs)
        idx = torch.arange(n)
        a, b = _central_pairs(xs, run.vec, 1e-2 * s)
        top, q = _consider(run.best, run.maps, a, b, target, "power_iteration", idx)
        fin = q[torch.isfinite(q)]
        run.lower_mean = float(fin.mean()) if fin.numel() else None
        for h in STEP_SIZES:
            if h != 1e-2:
                a, b = _central_pairs(xs[order], run.vec[order], h * s[order])
                t2, _ = _consider(run.best, run.maps, a, b, target, "power_iteration", order)
                top = _larger(top, t2)
        run.sources["power_iteration"] = top
    except Exception as e:
        run.notes.append(f"power_iteration failed: {_line(e)}")
        run.sig = None


def _propose_ascent(run: _Run, sigma: _Sigma, steps: int, iters: int) -> None:
    """Hill climbing on σ_max(J(x)) from the top_k power-iteration points; pairs at every h."""
    if steps <= 0:
        run.notes.append("jacobian_ascent not run (steps = 0)")
        return
    if run.vec is None:
        run.notes.append("jacobian_ascent not run (no power-iteration start)")
        return
    if run.spent("jacobian_ascent"):
        return
    order = run.order
    try:
        xa, ua = _ascent(
            sigma, run.xs[order], run.vec[order], steps, max(5, iters // 3), run.gen, run.notes, run.deadline
        )
        top = None
        for h in STEP_SIZES:
            a, b = _central_pairs(xa, ua, h * _scale(xa))
            t2, _ = _consider(run.best, run.maps, a, b, run.target, "jacobian_ascent")
            top = _larger(top, t2)
        run.sources["jacobian_ascent"] = top
    except Exception as e:
        run.notes.append(f"jacobian_ascent failed: {_line(e)}")


def _propose_pairwise(run: _Run, steps: int) -> None:
    """Adam on the quotient from the top_k points (start direction: power vector, else random)."""
    xs, order = run.xs, run.order
    if run.spent("pairwise"):
        return
    try:
        u0 = (
            run.vec[order]
            if run.vec is not None
            else unit_samples(torch.randn(xs[order].shape, generator=run.gen, dtype=xs.dtype).to(xs.device))
        )
        pa, pb = _pairwise(
            run.maps.search, xs[order], u0, run.target, max(steps, 1) * 3, deadline=run.deadline
        )
        run.sources["pairwise"], _ = _consider(run.best, run.maps, pa, pb, run.target, "pairwise")
    except Exception as e:
        run.notes.append(f"pairwise failed: {_line(e)}")


def _propose_gradient_free(run: _Run) -> None:
    """Random unit directions at the first max(top_k, 8) points, then all pairs of data points."""
    xs, n = run.xs, run.xs.shape[0]
    if not run.spent("random_directions"):
        try:
            m = min(n, max(run.k, 8))
            r = unit_samples(torch.randn(xs[:m].shape, generator=run.gen, dtype=xs.dtype).to(xs.device))
            a, b = _central_pairs(xs[:m], r, 1e-1 * _scale(xs[:m]))
            run.sources["random_directions"], _ = _consider(
                run.best, run.maps, a, b, run.target, "random_directions", torch.arange(m)
            )
        except Exception as e:
            run.notes.append(f"random_directions failed: {_line(e)}")
    try:
        if n >= 2:
            run.sources["data_pairs"] = _data_pairs(run.best, run.maps, xs, run.fx, run.target)
        else:
            run.notes.append("data_pairs not run (one point)")
    except Exception as e:
        run.notes.append(f"data_pairs failed: {_line(e)}")


def _result(run: _Run) -> LowerBound:
    lower = run.best.q if run.best.witness is not None else None
    if lower is None:
        run.notes.append("no proposer produced a valid pair: no witnessed lower bound")
    elif lower == 0:
        run.notes.append("every witnessed quotient is within the rounding allowance")
    sig, conv = run.sig, run.conv
    return LowerBound(
        lower=lower,
        witness=run.best.witness,
        sources=run.sources,
        lower_mean=run.lower_mean,
        autograd_sigma_max=float(sig.max()) if sig is not None else None,
        power_mean=float(sig.mean()) if sig is not None else None,
        converged=bool(conv.all()) if conv is not None and sig is not None else None,
        **run.base(),
    )


def lower_bounds(
    f: nn.Module | Map,
    x: torch.Tensor,
    target: Target = "A",
    iters: int = 30,
    steps: int = 10,
    top_k: int = 4,
    generator: torch.Generator | None = None,
    budget_s: float | None = None,
) -> LowerBound:
    """Witnessed lower bound of the Lipschitz constant (ℓ2 → ℓ2) of f (target "A") or 2f − I
    ("reflection") on [0, 1]^d, from search started at the points x (N, C, H, W) in [0, 1].

    iters: power-iteration steps; steps: hill-climbing steps (pairwise search: 3·steps Adam steps);
    top_k: points refined by the searches; budget_s: wall-time budget (None: none) — once spent,
    the searches stop proposing (the pairs of data points are always compared) and the best
    witness so far is returned, with a note. A proposer that fails gives sources[name] = None and a
    note. Raises RlipError when f fails on a plain forward of x or returns non-finite values."""
    if target not in ("A", "reflection"):
        raise RlipError(f"unknown target {target!r}; expected 'A' or 'reflection'")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    deadline = None if budget_s is None else time.perf_counter() + max(0.0, float(budget_s))
    notes: list[str] = []
    x = _check_x(x, notes)
    with preserved_rng(), _protected(f) as (work, pnotes):
        notes += pnotes
        maps, xs, fx = _prepare(work, x, notes)
        check_target(target, xs.shape, fx.shape)
        k = min(top_k, xs.shape[0])
        run = _Run(maps, xs, fx, target, gen, notes, k, torch.arange(k), deadline=deadline)
        why = _per_sample_problem(maps, xs, gen)
        if why is not None:
            notes.append(why)
            return LowerBound(
                lower=None,
                witness=None,
                sources=run.sources,
                lower_mean=None,
                autograd_sigma_max=None,
                power_mean=None,
                converged=None,
                **run.base(),
            )
        sigma = _Sigma(maps.search, target, notes)
        if not run.spent("power_iteration"):
            _propose_power(run, sigma, iters)
        _propose_ascent(run, sigma, steps, iters)
        _propose_pairwise(run, steps)
        _propose_gradient_free(run)
        return _result(run)
