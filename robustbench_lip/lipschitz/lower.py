"""Witnessed lower bounds of a map's Lipschitz constant, and the firm non-expansiveness (FNE) test.

Every reported lower value is a quotient ‖g(x) − g(y)‖ / ‖x − y‖ of two evaluations of the map
g (g = f for target "A", g(z) = 2 f(z) − z for "reflection") at a recorded pair x, y in [0, 1]^d;
it is therefore ≤ the true constant of g on [0, 1]^d. Autograd search only PROPOSES pairs:

- power_iteration: σ_max(J(x_i)) with right singular vector v_i (double backward, or
  finite-difference JVPs when an op has no double backward) proposes (x_c − δv/2, x_c + δv/2),
  x_c = x_i moved inward just enough that the pair lies in [0, 1]^d, δ = h·s_i, s_i =
  max(‖x_i‖, 0.01·√d), for h in STEP_SIZES (all points at h = 1e-2, the top_k points at every h);
- jacobian_ascent: hill climbing on σ_max(J(x)) from the top_k points, same pairs;
- pairwise: Adam on the quotient from the top_k points, its best pair per start;
- random_directions, data_pairs: gradient-free fallbacks (random unit directions; pairs of points).

Candidates are re-evaluated in float64 (a float64 deep copy of the model) when the model allows;
otherwise in the model's own dtype, minus a rounding allowance (see `ALLOWANCE_ULPS`). The
caller's model (parameters, buffers, train flags), inputs and global RNG state are not changed:
the search and the evaluation run on deep copies, inside `preserved_rng`.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from robustbench_lip.device import preserved_modes, preserved_rng
from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.jacobian import check_target, sample_norms, spectral_norm, unit_samples

Target = Literal["A", "reflection"]
Map = Callable[[torch.Tensor], torch.Tensor]

STEP_SIZES: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
"""Pair distances relative to the input scale s_i: 1e-1 keeps rounding negligible (float32
fallback), 1e-3 stays in the local linear region of smooth maps; 1e-2 is used for every point."""
ALLOWANCE_ULPS = 2.0**14
"""Each evaluation g(z) is taken to be off by ≤ ALLOWANCE_ULPS · u · max(‖f(z)‖, ‖z‖) (u: unit
roundoff of the evaluation dtype, 2^-53 or 2^-24), i.e. ~1.6e4 roundoffs of the larger of input and
output — far above the forward error of sums of ≤ 10^4 terms per layer over tens of layers
(~√n·depth·u typically, n·u worst case per layer). The quotient reports max(0, Δ − a_x − a_y)/‖x − y‖.
It is a generous allowance, not a proof (inner activations far larger than input and output could
exceed it); with float64 it costs ~2e-12 relative, with float32 ~1e-3 of the larger norm."""
PROPOSERS: tuple[str, ...] = (
    "power_iteration",
    "jacobian_ascent",
    "pairwise",
    "random_directions",
    "data_pairs",
)
_BATCH = 64


# --------------------------------------------------------------------------------------------- results


@dataclass
class Witness:
    """A pair x, y (each (1, C, H, W), the exact tensors evaluated) and its witnessed quotient.

    quotient: ‖g(x) − g(y)‖ / ‖x − y‖ minus the rounding allowance; raw_quotient: without it;
    distance: ‖x − y‖ (ℓ2, pixel units); origin: the proposer; sample / sample_y: indices of the data
    points the pair sits at (None when the search moved away from the data)."""

    x: torch.Tensor
    y: torch.Tensor
    quotient: float
    raw_quotient: float
    origin: str
    distance: float
    eval_dtype: str
    sample: int | None = None
    sample_y: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "distance": self.distance,
            "quotient": self.quotient,
            "raw_quotient": self.raw_quotient,
            "sample": self.sample,
            "sample_y": self.sample_y,
            "eval_dtype": self.eval_dtype,
        }


@dataclass
class LowerBound:
    """Witnessed lower bound of the Lipschitz constant of g (target "A" or "reflection").

    lower: best witnessed quotient (None: no proposer produced a pair; see notes); witness: its pair;
    sources: best witnessed quotient per proposer (None: failed or not run); lower_mean: mean over
    the points of the witnessed quotient of their h = 1e-2 power-iteration pair;
    autograd_sigma_max / power_mean: the power-iteration σ_max estimates (max / mean over points) —
    unverified proposals, never a bound; converged: power iteration converged at every point."""

    target: str
    lower: float | None
    witness: Witness | None
    sources: dict[str, float | None]
    lower_mean: float | None
    autograd_sigma_max: float | None
    power_mean: float | None
    converged: bool | None
    n_points: int
    eval_dtype: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "lower_kind": "witnessed" if self.lower is not None else None,
            "lower_mean": self.lower_mean,
            "converged": self.converged,
            "lower_sources": dict(self.sources),
            "witness": self.witness.to_dict() if self.witness is not None else None,
            "autograd_sigma_max": self.autograd_sigma_max,
            "power_mean": self.power_mean,
            "autograd_kind": "proposal (unverified)",
            "n_points": self.n_points,
            "eval_dtype": self.eval_dtype,
            "notes": list(self.notes),
        }


@dataclass
class FNEWitness:
    """A pair violating (or nearest to violating) firm non-expansiveness, re-evaluated.

    value: v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖² in the evaluation dtype plus the rounding allowance
    (v < 0 ⇒ violated); normalised: value / ‖x − y‖²; raw_value: v without the allowance."""

    x: torch.Tensor
    y: torch.Tensor
    value: float
    raw_value: float
    normalised: float
    distance: float
    origin: str
    indices: list[int] | None
    eval_dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "indices": self.indices,
            "value": self.value,
            "raw_value": self.raw_value,
            "normalised": self.normalised,
            "distance": self.distance,
            "eval_dtype": self.eval_dtype,
        }


@dataclass
class FNEResult:
    """`fne_search` result; `to_dict()` has the record keys of kind "certify" / "fne"."""

    violated: bool | None
    verdict: str
    min_value: float | None
    min_normalised: float | None
    pairs_tested: int
    witness: FNEWitness | None
    eval_dtype: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "violated": self.violated,
            "verdict": self.verdict,
            "min_value": self.min_value,
            "min_normalised": self.min_normalised,
            "pairs_tested": self.pairs_tested,
            "witness": self.witness.to_dict() if self.witness is not None and self.violated else None,
            "eval_dtype": self.eval_dtype,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------- maps


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _dtype_of(f: Any, default: torch.dtype) -> torch.dtype:
    if isinstance(f, nn.Module):
        for t in (*f.parameters(), *f.buffers()):
            if t.is_floating_point():
                return t.dtype
    return default


class _LowPrecisionSpy(torch.utils._python_dispatch.TorchDispatchMode):
    """Records ops that produce non-float64 floating tensors (hard-coded casts in a float64 run)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if (
                isinstance(t, torch.Tensor)
                and t.is_floating_point()
                and t.dtype != torch.float64
                and t.numel() > 1
            ):
                self.ops.add(str(func))
        return out


@dataclass
class _Maps:
    """search: f on a private copy in its own dtype (autograd); exact: f for witnesses (eval_dtype)."""

    search: Map
    dtype: torch.dtype
    exact: Map
    eval_dtype: torch.dtype
    notes: list[str]

    @property
    def unit(self) -> float:
        return 2.0**-53 if self.eval_dtype == torch.float64 else float(torch.finfo(self.eval_dtype).eps) / 2

    def run_exact(self, z: torch.Tensor) -> torch.Tensor:
        """f(z) in eval_dtype, batched, no grad; returned as float64."""
        with torch.no_grad():
            outs = [self.exact(z[i : i + _BATCH].to(self.eval_dtype)) for i in range(0, z.shape[0], _BATCH)]
        out = torch.cat(outs)
        if not isinstance(out, torch.Tensor):
            raise RlipError("the model does not return a tensor")
        return out.double()


def _call(m: Any) -> Map:
    return lambda z: m(z.clone())  # the model may write into its input (in-place ops)


@contextlib.contextmanager
def _protected(f: Any) -> Iterator[tuple[Any, list[str]]]:
    """A private deep copy of f (or f itself, its state restored afterwards, when it cannot be copied)."""
    notes: list[str] = []
    if not isinstance(f, nn.Module):
        notes.append("f is not an nn.Module: evaluated as given (its state cannot be protected)")
        yield f, notes
        return
    try:
        work = copy.deepcopy(f)
    except Exception as e:
        notes.append(f"the model could not be copied ({_line(e)}); its state was restored afterwards")
        saved = {k: v.detach().clone() for k, v in f.state_dict(keep_vars=True).items()}
        try:
            with preserved_modes(f):
                yield f, notes
        finally:
            with torch.no_grad():
                for k, v in f.state_dict(keep_vars=True).items():
                    if k in saved:
                        v.copy_(saved[k])
        return
    for p in work.parameters():
        p.requires_grad_(False)
    yield work, notes


def _prepare(work: Any, x: torch.Tensor, notes: list[str]) -> tuple[_Maps, torch.Tensor, torch.Tensor]:
    """The maps, x cast to the model's dtype, and f(x) (float64). Raises RlipError for a model that
    fails on a plain forward or returns non-finite values."""
    dtype = _dtype_of(work, x.dtype if x.is_floating_point() else torch.float32)
    xs = x.detach().to(dtype)
    search = _call(work)
    try:
        with torch.no_grad():
            out = torch.cat([search(xs[i : i + _BATCH]) for i in range(0, xs.shape[0], _BATCH)])
    except RlipError:
        raise
    except Exception as e:
        raise RlipError(
            f"the model fails on a forward pass of inputs {tuple(xs.shape)}: {_line(e)}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise RlipError(f"the model returns {type(out).__name__}, not a tensor")
    bad = ~torch.isfinite(out.flatten(1)).all(1)
    if bool(bad.any()):
        raise RlipError(
            f"the model returns non-finite values on {int(bad.sum())} of {xs.shape[0]} inputs "
            f"(first: sample {int(bad.nonzero()[0])})"
        )
    probe = xs[:2]
    exact: Map = search
    eval_dtype = dtype
    if dtype != torch.float64:
        try:
            m64 = copy.deepcopy(work).double() if isinstance(work, nn.Module) else work
            cand = _call(m64)
            spy = _LowPrecisionSpy()
            with torch.no_grad(), spy:
                o64 = cand(probe.double())
            if not isinstance(o64, torch.Tensor) or o64.dtype != torch.float64:
                raise TypeError(f"it returns {getattr(o64, 'dtype', type(o64))}, not float64")
            if spy.ops:
                raise TypeError(
                    "it computes in lower precision inside (" + ", ".join(sorted(spy.ops)[:3]) + ")"
                )
            exact, eval_dtype = cand, torch.float64
        except Exception as e:
            notes.append(
                f"float64 evaluation unavailable ({_line(e)}); quotients evaluated in {str(dtype)[6:]} "
                f"minus a rounding allowance of {ALLOWANCE_ULPS:g} roundoffs"
            )
    maps = _Maps(search, dtype, exact, eval_dtype, notes)
    return maps, xs, maps.run_exact(xs) if eval_dtype != dtype else out.double()


def _per_sample_problem(maps: _Maps, xs: torch.Tensor, gen: torch.Generator) -> str | None:
    """Why f is not a deterministic per-sample map (batch statistics, dropout), or None."""
    probe = xs[:8] if xs.shape[0] >= 2 else torch.cat([xs, torch.rand(xs.shape, generator=gen).to(xs)])
    other = probe.clone()
    other[1:] = torch.rand(other[1:].shape, generator=gen).to(other)
    try:
        with torch.no_grad():
            a = maps.search(probe).double()
            b = maps.search(probe).double()
            c = maps.search(other).double()
    except Exception as e:
        maps.notes.append(f"per-sample independence not checked ({_line(e)})")
        return None
    tol = 1e-3 * float(a.abs().max()) + 1e-6
    if float((a - b).abs().max()) > tol:
        return "the model is not deterministic (dropout in train mode?); no witnessed lower bound"
    if float((a[0] - c[0]).abs().max()) > tol:
        return (
            "the model's output for a sample depends on the rest of its batch (batch statistics, e.g. "
            "BatchNorm of a train-mode model or export); no witnessed lower bound — use eval mode"
        )
    return None


def _g(f: Map, target: str) -> Map:
    return f if target == "A" else (lambda z: 2 * f(z) - z)


def _bshape(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.dim() - 1)))


# --------------------------------------------------------------------------------------------- witnesses


def _quotients(
    maps: _Maps,
    a: torch.Tensor,
    b: torch.Tensor,
    target: str,
    fa: torch.Tensor | None = None,
    fb: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(allowed quotient, raw quotient, distance), each (P,) float64, of pairs a, b (P, ...) given in
    eval_dtype; invalid pairs (zero distance, non-finite output) get quotient −inf."""
    fa = maps.run_exact(a) if fa is None else fa
    fb = maps.run_exact(b) if fb is None else fb
    a64, b64 = a.double(), b.double()
    ga, gb = (fa, fb) if target == "A" else (2 * fa - a64, 2 * fb - b64)
    diff = sample_norms(ga - gb)
    dist = sample_norms(a64 - b64)
    scale = torch.maximum(sample_norms(fa), sample_norms(a64)) + torch.maximum(
        sample_norms(fb), sample_norms(b64)
    )
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
    fa: torch.Tensor | None = None,
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
    scale = torch.maximum(f64.norm(dim=1), x64.norm(dim=1))
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


# --------------------------------------------------------------------------------------------- proposers


def _power_fd(search: Map, x: torch.Tensor, target: str, iters: int, u0: torch.Tensor):
    """Power iteration with finite-difference JVPs and autograd VJPs (maps without double backward)."""
    refl = target == "reflection"
    xr = x.detach().requires_grad_(True)
    eps = _bshape(1e-3 * _scale(x), x)
    with torch.enable_grad():
        y = search(xr)

    def jvp(u: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ju = (search(x + eps * u / 2) - search(x - eps * u / 2)) / eps
        return 2 * ju - u if refl else ju

    def vjp(v: torch.Tensor) -> torch.Tensor:
        (jt,) = torch.autograd.grad(y, xr, v, retain_graph=True)
        return 2 * jt - v if refl else jt

    u = unit_samples(u0)
    prev = torch.full((x.shape[0],), math.nan, dtype=x.dtype, device=x.device)
    conv = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(iters):
        v = jvp(u)
        sig = sample_norms(v)
        u = unit_samples(vjp(v))
        conv = (sig - prev).abs() <= 1e-4 * sig.clamp_min(1e-12)
        prev = sig
        if bool(conv.all()):
            break
    return sample_norms(jvp(u)).detach(), u.detach(), conv


class _Sigma:
    """σ_max(J(x)) per sample with a warm start: double backward, else finite differences."""

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
        return _power_fd(self.search, x, self.target, iters, u0)


def _power(sigma: _Sigma, x: torch.Tensor, iters: int, gen: torch.Generator):
    sig, vec, conv = [], [], []
    for i in range(0, x.shape[0], _BATCH):
        xb = x[i : i + _BATCH]
        u0 = torch.randn(xb.shape, generator=gen, dtype=xb.dtype).to(xb.device)
        s, v, c = sigma(xb, iters, u0)
        sig.append(s)
        vec.append(v)
        conv.append(c)
    return torch.cat(sig), torch.cat(vec), torch.cat(conv)


def _jac_norm_along(f: Map, x: torch.Tensor, u: torch.Tensor, target: str) -> torch.Tensor:
    """‖J(x) u‖ per sample (or ‖(2J − I) u‖), differentiable with respect to x."""
    y = f(x)
    w = torch.zeros_like(y, requires_grad=True)
    (g,) = torch.autograd.grad(y, x, w, create_graph=True)
    (ju,) = torch.autograd.grad(g, w, u, create_graph=True)
    if target == "reflection":
        ju = 2 * ju - u
    return sample_norms(ju)


def _ascent(sigma: _Sigma, x0, u0, steps: int, iters: int, gen: torch.Generator, notes: list[str]):
    """Hill climbing on σ_max(J(x)) from x0 in [0, 1]: steps along ∇‖J(x)u‖ (a random direction where
    it vanishes or is unavailable), improvements kept. Returns the final points and vectors."""
    x, u = x0.clone(), u0.clone()
    sig, u, _ = sigma(x, iters, u)
    step = 0.25 * math.sqrt(x[0].numel()) / 16
    use_grad = not sigma.fd
    for _ in range(steps):
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


def _pairwise(search: Map, x0, u0, target: str, steps: int, lr: float = 0.01):
    """Adam on ‖g(x) − g(y)‖ / ‖x − y‖ over pairs in [0, 1] from y = x + 1e-2·u; best pair per start."""
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
        if it == steps:
            break
        gx, gy = torch.autograd.grad(-q.sum(), [x, y])
        x.grad, y.grad = gx, gy
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
            y.clamp_(0, 1)
    return bx, by


# --------------------------------------------------------------------------------------------- lower bounds


def _check_x(x: torch.Tensor, notes: list[str]) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] < 1:
        raise RlipError("x must be a non-empty batch of inputs (N, C, H, W)")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        notes.append(f"inputs outside [0, 1] (range [{lo:.3g}, {hi:.3g}]) were clamped")
        x = x.clamp(0, 1)
    return x.detach()


def lower_bounds(
    f: nn.Module | Map,
    x: torch.Tensor,
    target: Target = "A",
    iters: int = 30,
    steps: int = 10,
    top_k: int = 4,
    generator: torch.Generator | None = None,
) -> LowerBound:
    """Witnessed lower bound of the Lipschitz constant (ℓ2 → ℓ2) of f (target "A") or 2f − I
    ("reflection") on [0, 1]^d, from search started at the points x (N, C, H, W) in [0, 1].

    iters: power-iteration steps; steps: hill-climbing steps (pairwise search: 3·steps Adam steps);
    top_k: points refined by the searches. A proposer that fails gives sources[name] = None and a
    note. Raises RlipError when f fails on a plain forward of x or returns non-finite values."""
    if target not in ("A", "reflection"):
        raise RlipError(f"unknown target {target!r}; expected 'A' or 'reflection'")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    notes: list[str] = []
    x = _check_x(x, notes)
    with preserved_rng(), _protected(f) as (work, pnotes):
        notes += pnotes
        maps, xs, fx = _prepare(work, x, notes)
        check_target(target, xs.shape, fx.shape)
        n = xs.shape[0]
        sources: dict[str, float | None] = dict.fromkeys(PROPOSERS)
        base = {"target": target, "n_points": n, "eval_dtype": str(maps.eval_dtype)[6:], "notes": notes}
        why = _per_sample_problem(maps, xs, gen)
        if why is not None:
            notes.append(why)
            return LowerBound(
                lower=None,
                witness=None,
                sources=sources,
                lower_mean=None,
                autograd_sigma_max=None,
                power_mean=None,
                converged=None,
                **base,
            )
        best = _Best()
        sigma = _Sigma(maps.search, target, notes)
        k = min(top_k, n)
        sig = vec = conv = None
        lower_mean = None
        order = torch.arange(k)
        try:
            sig, vec, conv = _power(sigma, xs, iters, gen)
            order = torch.argsort(sig, descending=True)[:k].cpu()
            s = _scale(xs)
            idx = torch.arange(n)
            a, b = _central_pairs(xs, vec, 1e-2 * s)
            top, q = _consider(best, maps, a, b, target, "power_iteration", idx)
            fin = q[torch.isfinite(q)]
            lower_mean = float(fin.mean()) if fin.numel() else None
            for h in STEP_SIZES:
                if h != 1e-2:
                    a, b = _central_pairs(xs[order], vec[order], h * s[order])
                    t2, _ = _consider(best, maps, a, b, target, "power_iteration", order)
                    top = t2 if top is None else (top if t2 is None else max(top, t2))
            sources["power_iteration"] = top
        except Exception as e:
            notes.append(f"power_iteration failed: {_line(e)}")
            sig = None
        if steps <= 0:
            notes.append("jacobian_ascent not run (steps = 0)")
        elif vec is None:
            notes.append("jacobian_ascent not run (no power-iteration start)")
        else:
            try:
                xa, ua = _ascent(sigma, xs[order], vec[order], steps, max(5, iters // 3), gen, notes)
                top = None
                for h in STEP_SIZES:
                    a, b = _central_pairs(xa, ua, h * _scale(xa))
                    t2, _ = _consider(best, maps, a, b, target, "jacobian_ascent")
                    top = t2 if top is None else (top if t2 is None else max(top, t2))
                sources["jacobian_ascent"] = top
            except Exception as e:
                notes.append(f"jacobian_ascent failed: {_line(e)}")
        try:
            u0 = (
                vec[order]
                if vec is not None
                else unit_samples(torch.randn(xs[order].shape, generator=gen, dtype=xs.dtype).to(xs.device))
            )
            pa, pb = _pairwise(maps.search, xs[order], u0, target, max(steps, 1) * 3)
            sources["pairwise"], _ = _consider(best, maps, pa, pb, target, "pairwise")
        except Exception as e:
            notes.append(f"pairwise failed: {_line(e)}")
        try:
            m = min(n, max(k, 8))
            r = unit_samples(torch.randn(xs[:m].shape, generator=gen, dtype=xs.dtype).to(xs.device))
            a, b = _central_pairs(xs[:m], r, 1e-1 * _scale(xs[:m]))
            sources["random_directions"], _ = _consider(
                best, maps, a, b, target, "random_directions", torch.arange(m)
            )
        except Exception as e:
            notes.append(f"random_directions failed: {_line(e)}")
        try:
            if n >= 2:
                sources["data_pairs"] = _data_pairs(best, maps, xs, fx, target)
            else:
                notes.append("data_pairs not run (one point)")
        except Exception as e:
            notes.append(f"data_pairs failed: {_line(e)}")
        lower = best.q if best.witness is not None else None
        if lower is None:
            notes.append("no proposer produced a valid pair: no witnessed lower bound")
        elif lower == 0:
            notes.append("every witnessed quotient is within the rounding allowance")
        return LowerBound(
            lower=lower,
            witness=best.witness,
            sources=sources,
            lower_mean=lower_mean,
            autograd_sigma_max=float(sig.max()) if sig is not None else None,
            power_mean=float(sig.mean()) if sig is not None else None,
            converged=bool(conv.all()) if conv is not None and sig is not None else None,
            **base,
        )


# --------------------------------------------------------------------------------------------- FNE


def _fne_values(maps: _Maps, a: torch.Tensor, b: torch.Tensor, fa=None, fb=None):
    """(v + allowance, v, ‖a − b‖²) per pair, float64; a, b in eval_dtype (P, ...)."""
    fa = maps.run_exact(a) if fa is None else fa
    fb = maps.run_exact(b) if fb is None else fb
    a64, b64 = a.double(), b.double()
    da, dx = (fa - fb).flatten(1), (a64 - b64).flatten(1)
    v = (da * dx).sum(1) - da.pow(2).sum(1)
    scale = torch.maximum(sample_norms(fa), sample_norms(a64)) + torch.maximum(
        sample_norms(fb), sample_norms(b64)
    )
    e = ALLOWANCE_ULPS * maps.unit * scale  # ‖error of Ax − Ay‖
    err = e * (dx.norm(dim=1) + 2 * da.norm(dim=1) + e)
    hi = torch.where(torch.isfinite(v), v + err, torch.full_like(v, math.inf))
    return hi, v, dx.pow(2).sum(1)


def fne_search(
    f: nn.Module | Map,
    x: torch.Tensor,
    steps: int = 10,
    generator: torch.Generator | None = None,
    max_pairs: int = 256,
    lr: float = 0.01,
) -> FNEResult:
    """Firm non-expansiveness test of A = f on [0, 1]^d: v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖² (FNE ⇔
    v ≥ 0 for all x, y). Pairs: up to max_pairs random pairs of the points x (N, C, H, W), then Adam
    on v / ‖x − y‖² from the worst 4; candidates re-evaluated in float64 (else the model's dtype
    plus a rounding allowance). Violated only when the re-evaluated v plus allowance is < 0."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
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
        hi, v, d = _fne_values(maps, xe[i], xe[j], fx[i.to(fx.device)], fx[j.to(fx.device)])
        norm = hi / d.clamp_min(1e-300)
        k = int(norm.argmin())
        cand = [
            (
                float(norm[k]),
                float(hi[k]),
                float(v[k]),
                float(d[k]),
                xe[i[k]],
                xe[j[k]],
                "data pair",
                [int(i[k]), int(j[k])],
            )
        ]
        min_value = float(hi.min())
        if steps > 0:
            try:
                order = torch.argsort(norm)[: min(4, m)]
                a = xs[i[order]].clone().requires_grad_(True)
                b = xs[j[order]].clone().requires_grad_(True)
                opt = torch.optim.Adam([a, b], lr=lr)
                bq = torch.full((a.shape[0],), math.inf, dtype=torch.float64)
                ba, bb = a.detach().clone(), b.detach().clone()
                for it in range(steps + 1):
                    with torch.enable_grad():
                        da = maps.search(a) - maps.search(b)
                        dx = a - b
                        dd = dx.flatten(1).pow(2).sum(1)
                        q = ((da * dx).flatten(1).sum(1) - da.flatten(1).pow(2).sum(1)) / dd.clamp_min(1e-12)
                    qd = (
                        torch.where(dd.detach() > 1e-12, q.detach(), torch.full_like(q, math.inf))
                        .double()
                        .cpu()
                    )
                    imp = qd < bq
                    if bool(imp.any()):
                        mm = _bshape(imp.to(a.device), a)
                        ba, bb = torch.where(mm, a.detach(), ba), torch.where(mm, b.detach(), bb)
                        bq = torch.where(imp, qd, bq)
                    if it == steps:
                        break
                    a.grad, b.grad = torch.autograd.grad(q.sum(), [a, b])
                    opt.step()
                    with torch.no_grad():
                        a.clamp_(0, 1)
                        b.clamp_(0, 1)
                ea, eb = ba.to(maps.eval_dtype), bb.to(maps.eval_dtype)
                h2, v2, d2 = _fne_values(maps, ea, eb)
                n2 = torch.where(d2 > 0, h2 / d2.clamp_min(1e-300), torch.full_like(h2, math.inf))
                kk = int(n2.argmin())
                min_value = min(min_value, float(h2.min()))
                cand.append(
                    (
                        float(n2[kk]),
                        float(h2[kk]),
                        float(v2[kk]),
                        float(d2[kk]),
                        ea[kk],
                        eb[kk],
                        "optimised pair",
                        [int(i[order[kk]]), int(j[order[kk]])],
                    )
                )
            except Exception as e:
                notes.append(f"fne pair optimisation failed: {_line(e)}")
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


def fne_test(
    f: nn.Module | Map,
    x: torch.Tensor,
    steps: int = 10,
    generator: torch.Generator | None = None,
    max_pairs: int = 256,
    lr: float = 0.01,
) -> dict[str, Any]:
    """`fne_search(...).to_dict()`: {"violated", "verdict", "min_value", "min_normalised",
    "pairs_tested", "witness" (summary, no tensors; None unless violated), "eval_dtype", "notes"}."""
    return fne_search(f, x, steps=steps, generator=generator, max_pairs=max_pairs, lr=lr).to_dict()


__all__ = [
    "ALLOWANCE_ULPS",
    "PROPOSERS",
    "STEP_SIZES",
    "FNEResult",
    "FNEWitness",
    "LowerBound",
    "Witness",
    "fne_search",
    "fne_test",
    "lower_bounds",
]
