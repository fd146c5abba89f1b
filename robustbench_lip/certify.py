"""Certify a model: certified upper and measured lower Lipschitz bounds of A and R = 2A − I, the
firm non-expansiveness test, and certified ℓ2 robustness (accuracy / pixel accuracy / mIoU).

`certify(model, images, labels, masks, ...)` returns a `Certificate` whose `payload()` holds the
record keys of kind "certify": `lipschitz` {"A", "R"}, `fne`, `certified_accuracy`,
`certified_miou`, `certified_pixel_accuracy`, `clean`, `unsupported_ops`, `timings` (+ `layers`).

Words: "upper" values are certified (provably ≥ the true constant over all of R^d); "lower"
values are estimates — each is a true Lipschitz quotient or local Jacobian norm at a point found
by search, hence ≤ the true constant on [0, 1]^d, but not the constant itself.

Certified radii (ℓ2, pixel units):
- classifier: margin / (√2·U) with margin = top logit − runner-up (a pair of logits moves by at
  most √2·‖ΔA‖ ≤ √2·U·‖δ‖);
- K-class segmenter (forward (N, K, H, W)): per pixel margin / (√2·U), U the bound of the whole
  output map (a pixel's logit vector moves by at most ‖ΔA‖);
- binary image-to-image model (1 channel, mask = z > 0, mask logits [0, z]): |z| / U, since the
  pair difference of [0, z] is z itself and |Δz_pixel| ≤ ‖ΔA‖ ≤ U‖δ‖; [0, z] has the constant of z.
A pixel counts as certified-correct at ε when it is correct and its radius > ε; uncertified
pixels get an impossible label, so they are wrong for every class in the certified mIoU.
mResNet's CAM masks are not certified (their map, upsampled class maps, is not the bounded
forward map); only its classification is.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.device import preserved_modes, preserved_rng
from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds import Mode, UpperBound, upper_bound
from robustbench_lip.lipschitz.jacobian import sample_norms, spectral_norm
from robustbench_lip.metrics import ConfusionMatrix

log = logging.getLogger(__name__)

DEFAULT_EPS: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255)
TargetChoice = Literal["A", "reflection", "both"]
SQRT2 = math.sqrt(2.0)


@dataclass
class LowerBound:
    """Measured lower estimates of a map's Lipschitz constant (target "A" or "reflection").

    lower: best of the sources; power_max / power_mean / converged: power iteration at the points;
    adversarial: Jacobian-norm search from the worst points; pairwise: the best quotient
    ‖g(x) − g(y)‖ / ‖x − y‖ over optimised pairs.
    """

    lower: float
    power_max: float
    power_mean: float
    converged: bool
    adversarial: float
    pairwise: float
    n_points: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "lower_kind": "estimate",
            "lower_mean": self.power_mean,
            "converged": self.converged,
            "lower_sources": {
                "power_iteration": self.power_max,
                "adversarial": self.adversarial,
                "pairwise": self.pairwise,
            },
            "n_points": self.n_points,
        }


@dataclass
class Certificate:
    """Everything `certify` found; `payload()` gives the record's payload keys."""

    bound: UpperBound
    lower_A: LowerBound
    lower_R: LowerBound | None
    fne: dict[str, Any]
    certified_accuracy: dict[str, float] | None
    certified_accuracy_estimate: dict[str, float] | None
    certified_miou: dict[str, float | None] | None
    certified_miou_estimate: dict[str, float | None] | None
    certified_pixel_accuracy: dict[str, float] | None
    clean: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def payload(self, layers: bool = False) -> dict[str, Any]:
        u = self.bound.upper
        a = {"upper": u, "upper_kind": "certified" if u is not None else None, **self.lower_A.to_dict()}
        a["gap"] = _gap(u, self.lower_A.lower)
        r = None
        if self.lower_R is not None:
            ru = self.bound.reflection_upper()
            r = {"upper": ru, "upper_kind": "certified" if ru is not None else None, **self.lower_R.to_dict()}
            r["gap"] = _gap(ru, self.lower_R.lower)
        out: dict[str, Any] = {
            "lipschitz": {"A": a, "R": r, "bound_mode": self.bound.mode, "graph": self.bound.graph},
            "fne": self.fne,
            "certified_accuracy": self.certified_accuracy,
            "certified_accuracy_estimate": self.certified_accuracy_estimate,
            "certified_miou": self.certified_miou,
            "certified_miou_estimate": self.certified_miou_estimate,
            "certified_pixel_accuracy": self.certified_pixel_accuracy,
            "clean": self.clean,
            "unsupported_ops": list(self.bound.unsupported_ops),
            "bound_problems": [p.to_dict() for p in self.bound.problems],
            "timings": self.timings,
            "notes": self.notes,
        }
        if layers:
            out["layers"] = [vars(layer) for layer in self.bound.layers]
        return out


def _gap(upper: float | None, lower: float | None) -> float | None:
    if upper is None or lower is None or not lower > 0:
        return None
    return upper / lower


# ----------------------------------------------------------------------------------------------
# lower bounds
# ----------------------------------------------------------------------------------------------


def _g(f: Callable[[torch.Tensor], torch.Tensor], target: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return f if target == "A" else (lambda z: 2 * f(z) - z)


def _power(f, x: torch.Tensor, target: str, iters: int, gen: torch.Generator, batch: int = 64):
    sig, vec, conv = [], [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        u0 = torch.randn(xb.shape, generator=gen, dtype=xb.dtype).to(xb.device)  # CPU generator, any device
        r = spectral_norm(f, xb, target=target, iters=iters, u0=u0)  # type: ignore[arg-type]
        sig.append(r.sigma)
        vec.append(r.vector)
        conv.append(r.converged)
    return torch.cat(sig), torch.cat(vec), torch.cat(conv)


def _jac_norm_along(f, x: torch.Tensor, u: torch.Tensor, target: str) -> torch.Tensor:
    """‖J(x) u‖ per sample (or ‖(2J − I) u‖), differentiable with respect to x."""
    y = f(x)
    w = torch.zeros_like(y, requires_grad=True)
    (g,) = torch.autograd.grad(y, x, w, create_graph=True)
    (ju,) = torch.autograd.grad(g, w, u, create_graph=True)
    if target == "reflection":
        ju = 2 * ju - u
    return sample_norms(ju)


def _adversarial_jacobian(f, x0, u0, target: str, steps: int, iters: int, gen: torch.Generator) -> float:
    """Hill climbing on σ_max(J(x)) from x0 in [0,1]: step along ∇‖J(x)u‖ (a random direction
    where that gradient vanishes, e.g. piecewise-linear nets), keep improvements; returns the best
    power-iteration value seen."""
    x, u = x0.clone(), u0.clone()
    best_sig = spectral_norm(f, x, target=target, iters=iters, u0=u)  # type: ignore[arg-type]
    sig, u = best_sig.sigma, best_sig.vector
    best = float(sig.max())
    step = 0.25 * math.sqrt(x[0].numel()) / 16
    for _ in range(steps):
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            s = _jac_norm_along(f, xr, u, target)
            grad = torch.autograd.grad(s.sum(), xr, allow_unused=True)[0] if s.requires_grad else None
        if grad is None:
            grad = torch.zeros_like(x)
        gn = sample_norms(grad).view(-1, *([1] * (x.dim() - 1)))
        rnd = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        rnd = rnd / sample_norms(rnd).view_as(gn)
        direction = torch.where(gn > 1e-12, grad / gn.clamp_min(1e-12), rnd)
        cand = (x + step * direction).clamp(0, 1)
        r = spectral_norm(f, cand, target=target, iters=iters, u0=u)  # type: ignore[arg-type]
        better = r.sigma > sig
        m = better.view(-1, *([1] * (x.dim() - 1)))
        x = torch.where(m, cand, x)
        u = torch.where(m, r.vector, u)
        sig = torch.where(better, r.sigma, sig)
        if not bool(better.any()):
            step *= 0.5
        best = max(best, float(sig.max()))
    return best


def _pairwise(
    f, x0, u0, target: str, steps: int, lr: float = 0.01
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Maximise ‖g(x) − g(y)‖ / ‖x − y‖ over pairs in [0,1] with Adam, from y = x + h·u.

    Returns (best quotient, x, y) of the best pair (quotients are evaluated at projected points)."""
    h = 1e-2
    x = x0.clone()
    y = (x0 + h * u0).clamp(0, 1)
    same = sample_norms(x - y) < 1e-6
    if bool(same.any()):
        y[same] = (x0[same] - h * u0[same]).clamp(0, 1)
    g = _g(f, target)
    x = x.detach().requires_grad_(True)
    y = y.detach().requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=lr)
    best, bx, by = -1.0, x.detach().clone(), y.detach().clone()
    for it in range(steps + 1):
        with torch.enable_grad():
            d = sample_norms(x - y)
            q = sample_norms(g(x) - g(y)) / d.clamp_min(1e-12)
            q = torch.where(d > 1e-9, q, torch.zeros_like(q))
        qd = q.detach()
        i = int(qd.argmax())
        if float(qd[i]) > best:
            best, bx, by = float(qd[i]), x.detach()[i].clone(), y.detach()[i].clone()
        if it == steps:
            break
        opt.zero_grad()
        (-q.sum()).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
            y.clamp_(0, 1)
    return best, bx, by


def lower_bounds(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: str = "A",
    iters: int = 30,
    steps: int = 10,
    top_k: int = 4,
    generator: torch.Generator | None = None,
) -> tuple[LowerBound, torch.Tensor, torch.Tensor]:
    """Measured lower estimates of the Lipschitz constant of f (or 2f − I) from points x in [0,1].

    Returns (LowerBound, sigma per point (N,), right singular vectors (N, ...))."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    sig, vec, conv = _power(f, x, target, iters, gen)
    k = min(top_k, x.shape[0])
    idx = torch.argsort(sig, descending=True)[:k]
    adv = (
        _adversarial_jacobian(f, x[idx], vec[idx], target, steps, max(5, iters // 3), gen)
        if steps > 0
        else 0.0
    )
    pw, _, _ = _pairwise(f, x[idx], vec[idx], target, max(steps, 1) * 3)
    power_max = float(sig.max())
    lb = LowerBound(
        lower=max(power_max, adv, pw),
        power_max=power_max,
        power_mean=float(sig.mean()),
        converged=bool(conv.all()),
        adversarial=adv,
        pairwise=pw,
        n_points=int(x.shape[0]),
    )
    return lb, sig, vec


def fne_test(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    steps: int = 10,
    generator: torch.Generator | None = None,
    max_pairs: int = 256,
    lr: float = 0.01,
) -> dict[str, Any]:
    """Firm non-expansiveness test on pairs: v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖² (FNE ⇔ v ≥ 0 ∀x, y).

    Pairs: random data pairs, then Adam minimising v / ‖x − y‖² from the worst of them (projected to
    [0, 1]). Returns {"violated", "verdict", "min_value", "min_normalised", "pairs_tested", "witness"}
    with the witness summarised (origin, indices, distance, v) — never whole tensors."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n = x.shape[0]
    if n < 2:
        xs = torch.cat([x, torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)])
    else:
        xs = x
    n = xs.shape[0]
    m = min(max_pairs, n * (n - 1) // 2)
    i = torch.randint(0, n, (m,), generator=gen)
    j = (i + torch.randint(1, n, (m,), generator=gen)) % n

    def value(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        da = f(a) - f(b)
        dx = a - b
        v = (da * dx).flatten(1).sum(1) - da.flatten(1).pow(2).sum(1)
        return v, dx.flatten(1).pow(2).sum(1)

    with torch.no_grad():
        vs, ds = [], []
        for s in range(0, m, 64):
            v, d = value(xs[i[s : s + 64]], xs[j[s : s + 64]])
            vs.append(v)
            ds.append(d)
        v, d = torch.cat(vs), torch.cat(ds)
    k = int(v.argmin())
    witness = {
        "origin": "data pair",
        "indices": [int(i[k]), int(j[k])],
        "value": float(v[k]),
        "normalised": float(v[k] / d[k].clamp_min(1e-30)),
        "distance": float(d[k].sqrt()),
    }
    best = float(v[k])
    # optimise the worst (normalised) pairs
    if steps > 0:
        order = torch.argsort(v / d.clamp_min(1e-30))[: min(4, m)]
        a = xs[i[order]].clone().requires_grad_(True)
        b = xs[j[order]].clone().requires_grad_(True)
        opt = torch.optim.Adam([a, b], lr=lr)
        for it in range(steps + 1):
            with torch.enable_grad():
                vv, dd = value(a, b)
                q = vv / dd.clamp_min(1e-12)
            vd = vv.detach()
            kk = int(vd.argmin())
            if float(vd[kk]) < best and float(dd[kk].detach()) > 1e-12:
                best = float(vd[kk])
                witness = {
                    "origin": "optimised pair",
                    "indices": [int(i[order[kk]]), int(j[order[kk]])],
                    "value": best,
                    "normalised": float(q[kk].detach()),
                    "distance": float(dd[kk].detach().sqrt()),
                }
            if it == steps:
                break
            opt.zero_grad()
            q.sum().backward()
            opt.step()
            with torch.no_grad():
                a.clamp_(0, 1)
                b.clamp_(0, 1)
    violated = best < 0
    return {
        "violated": violated,
        "verdict": "violated" if violated else "not violated on tested points",
        "min_value": best,
        "min_normalised": witness["normalised"],
        "pairs_tested": int(m),
        "witness": witness if violated else None,
    }


# ----------------------------------------------------------------------------------------------
# certified robustness
# ----------------------------------------------------------------------------------------------


def _top2_margin(logits: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    top = logits.topk(2, dim=dim)
    return top.indices.select(dim, 0), top.values.select(dim, 0) - top.values.select(dim, 1)


def certified_classification(
    logits: torch.Tensor, labels: torch.Tensor, lipschitz: float | None, eps: Sequence[float]
) -> dict[str, float] | None:
    """Fraction of samples correctly classified with ℓ2 radius margin / (√2·L) > ε, per ε."""
    if lipschitz is None or logits.shape[1] < 2:
        return None
    pred, margin = _top2_margin(logits)
    correct = pred == labels
    radius = margin / (SQRT2 * lipschitz) if lipschitz > 0 else torch.full_like(margin, math.inf)
    return {format_eps(e): float((correct & (radius > e)).float().mean()) for e in eps}


def _pixel_pred_radius(out: torch.Tensor, lipschitz: float) -> tuple[torch.Tensor, torch.Tensor]:
    if out.shape[1] == 1:  # binary: mask = z > 0, logits [0, z]
        z = out[:, 0]
        r = z.abs() / lipschitz if lipschitz > 0 else torch.full_like(z, math.inf)
        return (z > 0).long(), r
    pred, margin = _top2_margin(out)
    r = margin / (SQRT2 * lipschitz) if lipschitz > 0 else torch.full_like(margin, math.inf)
    return pred, r


def certified_segmentation(
    out: torch.Tensor, masks: torch.Tensor, lipschitz: float | None, eps: Sequence[float], num_classes: int
) -> tuple[dict[str, float | None], dict[str, float]] | None:
    """(certified mIoU per ε, certified pixel accuracy per ε) — uncertified pixels are wrong."""
    if lipschitz is None:
        return None
    pred, radius = _pixel_pred_radius(out, lipschitz)
    miou: dict[str, float | None] = {}
    pix: dict[str, float] = {}
    for e in eps:
        ok = radius > e
        p = torch.where(ok, pred, torch.full_like(pred, num_classes))
        cm = ConfusionMatrix(num_classes + 1).update(p.flatten(), masks.flatten())
        iou = cm.per_class_iou()[:num_classes]
        miou[format_eps(e)] = None if bool(torch.isnan(iou).all()) else float(torch.nanmean(iou))
        pix[format_eps(e)] = float(((p == masks) & ok).float().mean())
    return miou, pix


# ----------------------------------------------------------------------------------------------
# the whole certificate
# ----------------------------------------------------------------------------------------------


def _task_of(model: nn.Module, out: torch.Tensor, x: torch.Tensor) -> str:
    cfg = getattr(model, "config", None)
    if cfg is not None:
        return cfg.task
    if out.dim() == 2:
        return "classification"
    if out.shape == x.shape:
        return "image2image"
    if out.dim() == 4 and out.shape[2:] == x.shape[2:]:
        return "segmentation"
    return "features"


def certify(
    model: nn.Module,
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    target: TargetChoice = "both",
    eps: Sequence[float] = DEFAULT_EPS,
    n_random: int = 32,
    iters: int = 30,
    steps: int = 10,
    seed: int = 0,
    mode: Mode = "fast",
    num_mask_classes: int | None = None,
    device: str | torch.device | None = None,
    bound: UpperBound | None = None,
) -> Certificate:
    """Certify `model` (inputs in [0,1], eval semantics; its modes and the global RNG are restored).

    images (N, C, H, W) / labels (N,) / masks (N, H, W) from a dataset, or images=None to use
    `n_random` uniform random points of `input_shape` (defaults to model.config.input_size).
    target: "A", "reflection" (needs output shape == input shape) or "both" (R when defined).
    eps: ℓ2 radii for the certified metrics. num_mask_classes: mask label count for segmenters
    (defaults to model.config.num_mask_classes). bound: a precomputed UpperBound to reuse.
    """
    if target not in ("A", "reflection", "both"):
        raise RlipError(f"unknown target {target!r}; expected A, reflection or both")
    cfg = getattr(model, "config", None)
    if images is None:
        shape = tuple(input_shape) if input_shape is not None else (tuple(cfg.input_size) if cfg else None)
        if shape is None:
            raise RlipError("no data and no input shape: pass --input-shape C,H,W")
    else:
        if images.dim() < 2:
            raise RlipError("images must be a batch (N, C, H, W)")
        shape = tuple(images.shape[1:])
    dev = (
        torch.device(device)
        if device is not None
        else next((p.device for p in model.parameters()), torch.device("cpu"))
    )
    timings: dict[str, float] = {}
    notes: list[str] = []
    with preserved_modes(model), preserved_rng():
        try:
            model.eval()
        except NotImplementedError:  # modules of exported programs: set the flags directly
            for m in model.modules():
                m.training = False
        gen = torch.Generator().manual_seed(seed)
        if images is None:
            x = torch.rand((n_random, *shape), generator=gen).to(dev)
            notes.append(f"no data: lower bounds from {n_random} uniform random points in [0,1]")
        else:
            x = images.to(dev, torch.float32)
        with torch.no_grad():
            try:
                out = torch.cat([model(x[i : i + 64]) for i in range(0, x.shape[0], 64)])
            except RlipError:
                raise
            except Exception as e:  # a foreign model may raise anything
                text = str(e).strip().splitlines()
                raise RlipError(f"the model fails on inputs of shape {tuple(shape)}: {text[0] if text else e}") from None
        if not bool(torch.isfinite(out).all()):
            raise RlipError(f"the model returns non-finite values (NaN or inf) on inputs of shape {tuple(shape)}")
        same_shape = tuple(out.shape[1:]) == tuple(x.shape[1:])
        if target == "reflection" and not same_shape:
            raise RlipError(
                "the reflection R = 2A − I needs an output shape equal to the input shape; this model "
                f"maps {tuple(x.shape[1:])} → {tuple(out.shape[1:])}; use --target A"
            )
        t0 = time.perf_counter()
        ub = bound if bound is not None else upper_bound(model, shape, mode=mode, device=dev)
        timings["upper_s"] = time.perf_counter() - t0
        if ub.upper is None:
            notes.append("no certified bound: " + "; ".join(ub.reasons))
        f = model
        t0 = time.perf_counter()
        low_a, _, _ = lower_bounds(f, x, "A", iters=iters, steps=steps, generator=gen)
        low_r = None
        if same_shape and target in ("reflection", "both"):
            low_r, _, _ = lower_bounds(f, x, "reflection", iters=iters, steps=steps, generator=gen)
        if same_shape:
            fne = fne_test(f, x, steps=steps, generator=gen)
            ru = ub.reflection_upper()
            if ru is not None and ru <= 1:  # R 1-Lipschitz ⇔ A firmly non-expansive
                if fne["violated"]:
                    raise RlipError(
                        f"internal inconsistency: certified L(R) ≤ {ru:.6g} ≤ 1 but a pair violates firm "
                        "non-expansiveness; please report this model"
                    )
                fne["verdict"] = "certified"
        else:
            fne = {
                "violated": None,
                "verdict": "undefined (output shape differs from input shape)",
                "min_value": None,
                "min_normalised": None,
                "pairs_tested": 0,
                "witness": None,
            }
        timings["lower_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        task = _task_of(model, out, x)
        clean: dict[str, Any] = {"accuracy": None, "miou": None, "pixel_accuracy": None}
        ca = ca_est = miou = miou_est = pix = None
        if images is not None and task == "classification" and labels is not None and out.dim() == 2:
            lab = labels.to(out.device)
            clean["accuracy"] = float((out.argmax(1) == lab).float().mean())
            ca = certified_classification(out, lab, ub.upper, eps)
            ca_est = certified_classification(out, lab, low_a.lower, eps)
            if masks is not None:
                notes.append("CAM masks are not certified (only the classification is)")
        elif task == "features":
            notes.append(
                f"the output {tuple(out.shape[1:])} is a feature map: Lipschitz bounds only, no certified radius"
            )
        elif images is not None and masks is not None and out.dim() == 4:
            k = num_mask_classes if num_mask_classes is not None else (cfg.num_mask_classes if cfg else None)
            binary = out.shape[1] == 1 and (k in (None, 2))
            if binary:
                k = 2
            if k is None or (not binary and out.shape[1] != k):
                notes.append(
                    f"output channels {out.shape[1]} do not match the mask classes {k}: no segmentation"
                )
            else:
                mk = masks.to(out.device)
                pred, _ = _pixel_pred_radius(out, 1.0)
                cm = ConfusionMatrix(k).update(pred.flatten(), mk.flatten())
                clean["miou"], clean["pixel_accuracy"] = cm.miou(), cm.accuracy()
                r = certified_segmentation(out, mk, ub.upper, eps, k)
                if r is not None:
                    miou, pix = r
                re = certified_segmentation(out, mk, low_a.lower, eps, k)
                if re is not None:
                    miou_est = re[0]
        timings["robustness_s"] = time.perf_counter() - t0
    return Certificate(
        bound=ub,
        lower_A=low_a,
        lower_R=low_r,
        fne=fne,
        certified_accuracy=ca,
        certified_accuracy_estimate=ca_est,
        certified_miou=miou,
        certified_miou_estimate=miou_est,
        certified_pixel_accuracy=pix,
        clean=clean,
        timings=timings,
        notes=notes,
    )


def settings_for(
    data: str | None,
    n: int,
    target: str,
    eps: Sequence[float],
    seed: int,
    steps: int,
    mode: str,
    input_shape: Sequence[int],
) -> dict[str, Any]:
    """The record settings of a certify run (their key names the record file)."""
    return {
        "data": data,
        "n": int(n),
        "target": target,
        "eps": [format_eps(e) for e in eps],
        "seed": int(seed),
        "steps": int(steps),
        "mode": mode,
        "input_shape": [int(s) for s in input_shape],
    }


__all__ = [
    "DEFAULT_EPS",
    "Certificate",
    "LowerBound",
    "certified_classification",
    "certified_segmentation",
    "certify",
    "fne_test",
    "lower_bounds",
    "settings_for",
]
