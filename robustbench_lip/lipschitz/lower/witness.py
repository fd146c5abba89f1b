"""Witnessed quotients ‖g(x) − g(y)‖ / ‖x − y‖ of candidate pairs, re-evaluated in `eval_dtype`
minus the rounding allowance, and the best witness kept so far."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from robustbench_lip.lipschitz.jvp import sample_norms
from robustbench_lip.lipschitz.lower.maps import ALLOWANCE_ULPS, _bshape, _Maps
from robustbench_lip.lipschitz.lower.results import Witness


def _quotients(
    maps: _Maps,
    a: torch.Tensor,
    b: torch.Tensor,
    target: str,
    fa: tuple[torch.Tensor, torch.Tensor] | None = None,
    fb: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(allowed quotient, raw quotient, distance), each (P,) float64, of pairs a, b (P, ...) given in
    eval_dtype (fa, fb: their `_Maps.evaluate` results when known); invalid pairs (zero distance,
    non-finite output) get quotient −inf."""
    fa, sa = maps.evaluate(a) if fa is None else fa
    fb, sb = maps.evaluate(b) if fb is None else fb
    a64, b64 = a.double(), b.double()
    ga, gb = (fa, fb) if target == "A" else (2 * fa - a64, 2 * fb - b64)
    diff = sample_norms(ga - gb)
    dist = sample_norms(a64 - b64)
    scale = sa + sb
    allow = ALLOWANCE_ULPS * maps.unit * scale * (2.0 if target == "reflection" else 1.0)
    raw = diff / dist
    q = (diff - allow).clamp_min(0) / dist * (1 - 2.0**-40)
    ok = (dist > 0) & torch.isfinite(diff)
    neg = torch.full_like(q, -math.inf)
    return torch.where(ok, q, neg), torch.where(ok, raw, neg), dist


def _central_pairs(
    x: torch.Tensor, v: torch.Tensor, delta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_c − δv/2, x_c + δv/2) in [0, 1], x_c = x moved inward just enough; v unit (N, ...), δ (N,)."""
    half = _bshape(delta, x) / 2 * v
    m = half.abs().clamp_max(0.5)
    xc = torch.maximum(torch.minimum(x, 1 - m), m)
    return (xc - half).clamp(0, 1), (xc + half).clamp(0, 1)


def _scale(x: torch.Tensor) -> torch.Tensor:
    return sample_norms(x).clamp_min(0.01 * math.sqrt(x[0].numel()))


@dataclass
class _Best:
    q: float = -math.inf
    witness: Witness | None = None


def _consider(
    best: _Best,
    maps: _Maps,
    a: torch.Tensor,
    b: torch.Tensor,
    target: str,
    origin: str,
    samples: torch.Tensor | None = None,
    samples_y: torch.Tensor | None = None,
    fa: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[float | None, torch.Tensor]:
    """Evaluate pairs; update `best`; return (best allowed quotient of these pairs or None, q (P,))."""
    a, b = a.detach().to(maps.eval_dtype), b.detach().to(maps.eval_dtype)
    q, raw, dist = _quotients(maps, a, b, target, fa)
    k = int(q.argmax())
    top = float(q[k])
    if not math.isfinite(top):
        return None, q
    if top > best.q:
        best.q = top
        best.witness = Witness(
            x=a[k : k + 1].clone(),
            y=b[k : k + 1].clone(),
            quotient=top,
            raw_quotient=float(raw[k]),
            origin=origin,
            distance=float(dist[k]),
            eval_dtype=str(maps.eval_dtype)[6:],
            sample=int(samples[k]) if samples is not None else None,
            sample_y=int(samples_y[k]) if samples_y is not None else None,
        )
    return top, q


def _data_pairs(best: _Best, maps: _Maps, xs: torch.Tensor, fx: torch.Tensor, target: str) -> float | None:
    """All pairs of distinct data points, from the outputs fx (N, ...) float64 already computed."""
    xe = xs.to(maps.eval_dtype)
    x64 = xe.double().flatten(1)
    f64 = fx.flatten(1)
    g64 = f64 if target == "A" else 2 * f64 - x64
    diff = torch.cdist(g64, g64, compute_mode="donot_use_mm_for_euclid_dist")
    dist = torch.cdist(x64, x64, compute_mode="donot_use_mm_for_euclid_dist")
    scale = maps.x_scale if maps.x_scale is not None else torch.maximum(f64.norm(dim=1), x64.norm(dim=1))
    allow = (
        ALLOWANCE_ULPS
        * maps.unit
        * (scale[:, None] + scale[None, :])
        * (2.0 if target == "reflection" else 1.0)
    )
    q = (diff - allow).clamp_min(0) / dist.clamp_min(1e-300) * (1 - 2.0**-40)
    ok = (dist > 0) & torch.isfinite(diff)
    ok.fill_diagonal_(False)
    q = torch.where(ok, q, torch.full_like(q, -math.inf))
    k = int(q.argmax())
    i, j = divmod(k, q.shape[1])
    if not math.isfinite(float(q[i, j])):
        return None
    # the chosen pair re-evaluated the ordinary way (cdist may use a less exact expansion)
    top, _ = _consider(
        best, maps, xe[i : i + 1], xe[j : j + 1], target, "data_pairs", torch.tensor([i]), torch.tensor([j])
    )
    return top
