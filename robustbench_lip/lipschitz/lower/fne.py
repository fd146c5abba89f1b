"""The firm non-expansiveness (FNE) test: search for pairs with ⟨Ax − Ay, x − y⟩ < ‖Ax − Ay‖²,
re-evaluated in float64 (else the model's dtype plus a rounding allowance)."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from robustbench_lip.device import preserved_rng
from robustbench_lip.lipschitz.jvp import check_target
from robustbench_lip.lipschitz.lower.maps import (
    ALLOWANCE_ULPS,
    Map,
    _bshape,
    _check_x,
    _line,
    _Maps,
    _per_sample_problem,
    _prepare,
    _protected,
)
from robustbench_lip.lipschitz.lower.proposers import over_deadline
from robustbench_lip.lipschitz.lower.results import FNEResult, FNEWitness

_Candidate = tuple[float, float, float, float, torch.Tensor, torch.Tensor, str, list[int]]
"""(normalised, value, raw value, ‖x − y‖², x, y, origin, indices) of one tested pair."""


def _fne_values(maps: _Maps, a: torch.Tensor, b: torch.Tensor, fa=None, fb=None):
    """(v + allowance, v, ‖a − b‖²) per pair, float64; a, b in eval_dtype (P, ...)."""
    fa, sa = maps.evaluate(a) if fa is None else fa
    fb, sb = maps.evaluate(b) if fb is None else fb
    a64, b64 = a.double(), b.double()
    da, dx = (fa - fb).flatten(1), (a64 - b64).flatten(1)
    v = (da * dx).sum(1) - da.pow(2).sum(1)
    scale = sa + sb
    e = ALLOWANCE_ULPS * maps.unit * scale  # ‖error of Ax − Ay‖
    err = e * (dx.norm(dim=1) + 2 * da.norm(dim=1) + e)
    hi = torch.where(torch.isfinite(v), v + err, torch.full_like(v, math.inf))
    return hi, v, dx.pow(2).sum(1)


def _candidate(
    norm, hi, v, d, k: int, xk: torch.Tensor, yk: torch.Tensor, origin: str, idx: list[int]
) -> _Candidate:
    """The `_Candidate` of pair k of the per-pair values norm, hi, v, d (P,); xk, yk: its inputs."""
    return (float(norm[k]), float(hi[k]), float(v[k]), float(d[k]), xk, yk, origin, idx)


def _fne_adam(maps: _Maps, a: torch.Tensor, b: torch.Tensor, steps: int, lr: float, deadline=None):
    """Adam on v / ‖a − b‖² from the pairs a, b (P, ...) in [0, 1]; the best pair per start (at
    most `steps` steps, fewer when the deadline passes)."""
    opt = torch.optim.Adam([a, b], lr=lr)
    bq = torch.full((a.shape[0],), math.inf, dtype=torch.float64)
    ba, bb = a.detach().clone(), b.detach().clone()
    for it in range(steps + 1):
        with torch.enable_grad():
            da = maps.search(a) - maps.search(b)
            dx = a - b
            dd = dx.flatten(1).pow(2).sum(1)
            q = ((da * dx).flatten(1).sum(1) - da.flatten(1).pow(2).sum(1)) / dd.clamp_min(1e-12)
        qd = torch.where(dd.detach() > 1e-12, q.detach(), torch.full_like(q, math.inf)).double().cpu()
        imp = qd < bq
        if bool(imp.any()):
            mm = _bshape(imp.to(a.device), a)
            ba, bb = torch.where(mm, a.detach(), ba), torch.where(mm, b.detach(), bb)
            bq = torch.where(imp, qd, bq)
        if it == steps or over_deadline(deadline):
            break
        a.grad, b.grad = torch.autograd.grad(q.sum(), [a, b])
        opt.step()
        with torch.no_grad():
            a.clamp_(0, 1)
            b.clamp_(0, 1)
    return ba, bb


def _fne_witness(cand: list[_Candidate], min_value: float, m: int, ev: str, notes: list[str]) -> FNEResult:
    """The result from the tested candidates: the witness is the one of least normalised value."""
    nq, hv, rv, dd2, wa, wb, origin, idx = min(cand, key=lambda c: c[0])
    witness = FNEWitness(
        x=wa.unsqueeze(0).clone(),
        y=wb.unsqueeze(0).clone(),
        value=hv,
        raw_value=rv,
        normalised=nq,
        distance=math.sqrt(dd2),
        origin=origin,
        indices=idx,
        eval_dtype=ev,
    )
    violated = min_value < 0
    return FNEResult(
        violated=violated,
        verdict="violated" if violated else "not violated on tested points",
        min_value=min_value,
        min_normalised=nq,
        pairs_tested=int(m),
        witness=witness,
        eval_dtype=ev,
        notes=notes,
    )


def fne_search(
    f: nn.Module | Map,
    x: torch.Tensor,
    steps: int = 10,
    generator: torch.Generator | None = None,
    max_pairs: int = 256,
    lr: float = 0.01,
    budget_s: float | None = None,
) -> FNEResult:
    """Firm non-expansiveness test of A = f on [0, 1]^d: v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖² (FNE ⇔
    v ≥ 0 for all x, y). Pairs: up to max_pairs random pairs of the points x (N, C, H, W), then Adam
    on v / ‖x − y‖² from the worst 4; candidates re-evaluated in float64 (else the model's dtype
    plus a rounding allowance). Violated only when the re-evaluated v plus allowance is < 0.
    budget_s: wall-time budget of the pair optimisation (None: none; the data pairs always run)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    deadline = None if budget_s is None else time.perf_counter() + max(0.0, float(budget_s))
    notes: list[str] = []
    x = _check_x(x, notes)
    with preserved_rng(), _protected(f) as (work, pnotes):
        notes += pnotes
        if x.shape[0] < 2:
            x = torch.cat([x, torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)])
        maps, xs, fx = _prepare(work, x, notes)
        check_target("reflection", xs.shape, fx.shape)
        ev = str(maps.eval_dtype)[6:]
        why = _per_sample_problem(maps, xs, gen)
        if why is not None:
            notes.append(why)
            return FNEResult(None, "undefined (" + why.split(";")[0] + ")", None, None, 0, None, ev, notes)
        n = xs.shape[0]
        m = min(max_pairs, n * (n - 1) // 2)
        i = torch.randint(0, n, (m,), generator=gen)
        j = (i + torch.randint(1, n, (m,), generator=gen)) % n
        xe = xs.to(maps.eval_dtype)
        sx = maps.x_scale
        assert sx is not None
        fi, fj = (fx[i.to(fx.device)], sx[i.to(sx.device)]), (fx[j.to(fx.device)], sx[j.to(sx.device)])
        hi, v, d = _fne_values(maps, xe[i], xe[j], fi, fj)
        norm = hi / d.clamp_min(1e-300)
        k = int(norm.argmin())
        cand = [_candidate(norm, hi, v, d, k, xe[i[k]], xe[j[k]], "data pair", [int(i[k]), int(j[k])])]
        min_value = float(hi.min())
        if steps > 0:
            try:
                order = torch.argsort(norm)[: min(4, m)]
                a = xs[i[order]].clone().requires_grad_(True)
                b = xs[j[order]].clone().requires_grad_(True)
                ba, bb = _fne_adam(maps, a, b, steps, lr, deadline)
                ea, eb = ba.to(maps.eval_dtype), bb.to(maps.eval_dtype)
                h2, v2, d2 = _fne_values(maps, ea, eb)
                n2 = torch.where(d2 > 0, h2 / d2.clamp_min(1e-300), torch.full_like(h2, math.inf))
                kk = int(n2.argmin())
                min_value = min(min_value, float(h2.min()))
                pair = [int(i[order[kk]]), int(j[order[kk]])]
                cand.append(_candidate(n2, h2, v2, d2, kk, ea[kk], eb[kk], "optimised pair", pair))
            except Exception as e:
                notes.append(f"fne pair optimisation failed: {_line(e)}")
        return _fne_witness(cand, min_value, m, ev, notes)


def fne_test(
    f: nn.Module | Map,
    x: torch.Tensor,
    steps: int = 10,
    generator: torch.Generator | None = None,
    max_pairs: int = 256,
    lr: float = 0.01,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """`fne_search(...).to_dict()`: {"violated", "verdict", "min_value", "min_normalised",
    "pairs_tested", "witness" (summary, no tensors; None unless violated), "eval_dtype", "notes"}."""
    return fne_search(
        f, x, steps=steps, generator=generator, max_pairs=max_pairs, lr=lr, budget_s=budget_s
    ).to_dict()
